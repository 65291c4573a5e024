// Package podreview serves a controller-runtime admission.Handler over
// HTTP with the pod decoded once. The API server posts v1 reviews of one
// shape; those are decoded in one strict pass, the pod typed in it, where
// admission.Webhook parses the body twice (to find its kind, then to decode
// it) and a handler decodes the pod a third time. Any other body goes to
// admission.Webhook as it came, so every answer is the one that path gives,
// byte for byte.
package podreview

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	admissionmetrics "sigs.k8s.io/controller-runtime/pkg/webhook/admission/metrics"

	"github.com/guardchain/guardchain/internal/bufpool"
)

// PodHandler is a handler that takes the pod decoded with the review: pod
// is nil when the request carries none.
type PodHandler interface {
	admission.Handler
	HandlePod(ctx context.Context, req *admissionv1.AdmissionRequest, pod *corev1.Pod) admission.Response
}

// Webhook serves Handler. A handler that is a PodHandler gets reviews read
// in one pass; any other is served by admission.Webhook.
type Webhook struct {
	Handler admission.Handler
	Log     logr.Logger
	// Fallbacks, when set, counts the reviews left to admission.Webhook
	// (a prometheus.Counter, say).
	Fallbacks interface{ Inc() }
}

// ServeHTTP answers one AdmissionReview.
func (wh Webhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ph, ok := wh.Handler.(PodHandler)
	if !ok || r.Body == nil || r.Body == http.NoBody || r.Header.Get("Content-Type") != "application/json" {
		wh.fallback(w, r, nil)
		return
	}
	// The body and the patch are read and written in pooled buffers:
	// nothing decoded refers to the body, and the answer is written before
	// the patch buffer goes back.
	in, out := bufpool.Get(), bufpool.Get()
	defer bufpool.Put(in)
	defer bufpool.Put(out)
	body, complete := readReview(r, in)
	if !complete {
		wh.fallback(w, r, body)
		return
	}
	req, ok := decodeReview(body)
	if !ok {
		wh.fallback(w, r, body)
		return
	}
	resp := wh.review(r.Context(), ph, req, out)
	// The answer carries the patch's bytes, which out holds: it is encoded
	// into in, whose body nothing refers to any more.
	wh.write(w, resp, in)
}

// MaxBytes is controller-runtime's limit on a review body.
const MaxBytes = 7 << 20

// presizeReviewBytes is how much of a claimed Content-Length is allocated
// before the body arrives: far above a sandbox pod's review (about 5 KB).
const presizeReviewBytes = 64 << 10

const (
	reviewAPIVersion = "admission.k8s.io/v1"
	reviewKind       = "AdmissionReview"
)

// podReview is an admission.k8s.io/v1 AdmissionReview whose request holds
// the pod typed. Every field of AdmissionReview is here, so a strict decode
// flags only what the API server does not send.
type podReview struct {
	APIVersion string                         `json:"apiVersion,omitempty"`
	Kind       string                         `json:"kind,omitempty"`
	Request    *podRequest                    `json:"request,omitempty"`
	Response   *admissionv1.AdmissionResponse `json:"response,omitempty"`
}

type podRequest struct {
	admissionv1.AdmissionRequest
	// Object shadows the request's raw object. A JSON null leaves it nil,
	// as it leaves the raw object empty.
	Object *corev1.Pod `json:"object,omitempty"`
}

// decodeReview decodes a v1 review in one pass; ok is false for any body
// that admission.Webhook might read differently. The decode is strict: it
// is case-sensitive and refuses unknown and duplicate names, invalid UTF-8
// and anything after the review, so when it passes every key matched a
// field exactly once and the case-insensitive decoders (encoding/json
// finding the kind, Handle decoding the pod) agree with it. It is
// encoding/json/v2's (github.com/go-json-experiment/json), which reads a
// review in under half the time of encoding/json; FuzzDecodeAgrees holds
// it to sigs.k8s.io/json's strict decode, the API machinery's own.
func decodeReview(body []byte) (*podRequest, bool) {
	var req podRequest
	// "request": null leaves req empty, which Handle calls no request.
	rev := podReview{Request: &req}
	if err := jsonv2.Unmarshal(body, &rev, strict); err != nil || rev.APIVersion != reviewAPIVersion || rev.Kind != reviewKind {
		return nil, false
	}
	return &req, true
}

// strict makes encoding/json/v2 refuse unknown names; duplicate names,
// invalid UTF-8, trailing data and names in another case it refuses by
// default.
var strict = jsonv2.RejectUnknownMembers(true)

// Decode decodes body as the one-pass reader does; ok is false for a body
// it leaves to admission.Webhook.
func Decode(body []byte) (req *admissionv1.AdmissionRequest, pod *corev1.Pod, ok bool) {
	r, ok := decodeReview(body)
	if !ok {
		return nil, nil, false
	}
	return &r.AdmissionRequest, r.Object, true
}

// readReview reads the body, up to MaxBytes, into buf; complete is
// false when it could not read all of it (the fallback then reports why).
// The buffer grows to the length the client claims only as far as a review
// usually is; beyond that it grows with the bytes that arrive, so a claimed
// length alone (unauthenticated, on many connections)
// cannot make the webhook allocate.
func readReview(r *http.Request, buf *bytes.Buffer) (body []byte, complete bool) {
	if n := r.ContentLength; n > 0 {
		buf.Grow(int(min(n, presizeReviewBytes)))
	}
	lr := &io.LimitedReader{R: r.Body, N: MaxBytes}
	_, err := buf.ReadFrom(lr)
	return buf.Bytes(), err == nil && lr.N > 0
}

// fallback hands the request to controller-runtime's admission.Webhook, with
// the bytes already read put back in front of the rest of the body.
func (wh Webhook) fallback(w http.ResponseWriter, r *http.Request, read []byte) {
	if wh.Fallbacks != nil {
		wh.Fallbacks.Inc()
	}
	if read != nil {
		r.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(read), r.Body), r.Body}
	}
	(&admission.Webhook{Handler: wh.Handler, RecoverPanic: ptr.To(true)}).ServeHTTP(w, r)
}

// review is admission.Webhook.Handle for a decoded request: a panic is a 500
// that carries the request's UID, and the response is completed (UID, status
// code, encoded patch).
func (wh Webhook) review(ctx context.Context, h PodHandler, req *podRequest, patch *bytes.Buffer) (resp admission.Response) {
	defer func() {
		if p := recover(); p != nil {
			admissionmetrics.WebhookPanics.WithLabelValues().Inc()
			for _, fn := range utilruntime.PanicHandlers {
				fn(ctx, p)
			}
			resp = admission.Errored(http.StatusInternalServerError, fmt.Errorf("panic: %v [recovered]", p))
			resp.UID = req.UID
		}
	}()
	resp = h.HandlePod(ctx, &req.AdmissionRequest, req.Object)
	err := encodePatch(&resp, patch)
	if err == nil {
		err = resp.Complete(admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{UID: req.UID}})
	}
	if err != nil {
		wh.Log.Error(err, "encoding the admission response", "uid", string(req.UID))
		resp = admission.Errored(http.StatusInternalServerError, errors.New("unable to encode response"))
		resp.UID = req.UID
	}
	return resp
}

// write writes the answer as admission.Webhook does for a v1 review (the
// same bytes), encoded into buf first: with its length known, net/http
// sends it in one write, where a body past its 2 KiB buffer would go out
// chunked, in two TLS records and two system calls.
func (wh Webhook) write(w http.ResponseWriter, resp admission.Response, buf *bytes.Buffer) {
	buf.Reset()
	err := encodeAnswer(buf, &resp.AdmissionResponse)
	if err == nil {
		w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
		_, err = w.Write(buf.Bytes())
	}
	if err != nil {
		// The connection broke: nothing more can be written to it.
		wh.Log.Error(err, "writing the admission response", "uid", string(resp.UID))
	}
}
