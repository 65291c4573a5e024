package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/guardchain/guardchain/podreview"
)

// Handler answers pod CREATE admissions: it decodes the pod, calls Inject
// and answers with the JSON patch. Nothing else here decides. It is a
// controller-runtime admission.Handler (Handle), a podreview.PodHandler
// (HandlePod: the pod decoded with the review) and the http.Handler the
// server registers (ServeHTTP: podreview's one-pass reading).
type Handler struct {
	Config  Config
	Log     logr.Logger
	Metrics *Metrics // nil: no metrics
}

var _ podreview.PodHandler = (*Handler)(nil)

// ServeHTTP serves reviews through podreview, which decodes each once.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	wh := podreview.Webhook{Handler: h, Log: h.Log}
	if h.Metrics != nil {
		wh.Fallbacks = h.Metrics.GenericReviews
	}
	wh.ServeHTTP(w, r)
}

// HandlePod implements podreview.PodHandler.
func (h *Handler) HandlePod(_ context.Context, req *admissionv1.AdmissionRequest, pod *corev1.Pod) admission.Response {
	if resp, done := h.screen(req); done {
		return resp
	}
	if pod == nil {
		return h.noPod()
	}
	return h.admit(req, pod)
}

// Handle implements admission.Handler. It never panics on input: anything it
// cannot read is a 400 with a message.
func (h *Handler) Handle(ctx context.Context, req admission.Request) admission.Response {
	if resp, done := h.screen(&req.AdmissionRequest); done {
		return resp
	}
	if len(req.Object.Raw) == 0 {
		return h.noPod()
	}
	var pod corev1.Pod
	if err := json.Unmarshal(req.Object.Raw, &pod); err != nil {
		h.count(OutcomeErrored, "decode")
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("guardchain: decoding the pod: %w", err))
	}
	return h.admit(&req.AdmissionRequest, &pod)
}

// screen answers what needs no pod: a review without a request, and
// anything but a pod create.
func (h *Handler) screen(req *admissionv1.AdmissionRequest) (admission.Response, bool) {
	if req.Kind.Kind == "" {
		h.count(OutcomeErrored, "no-request")
		return admission.Errored(http.StatusBadRequest, errors.New("guardchain: the admission review carries no request")), true
	}
	if req.Kind.Group != "" || req.Kind.Kind != "Pod" || req.Resource.Resource != "pods" ||
		req.SubResource != "" || req.Operation != admissionv1.Create {
		return admission.Allowed("guardchain: only pod creates are mutated"), true
	}
	return admission.Response{}, false
}

func (h *Handler) noPod() admission.Response {
	h.count(OutcomeErrored, "no-object")
	return admission.Errored(http.StatusBadRequest, errors.New("guardchain: the admission request carries no pod"))
}

// admit runs Inject on the decoded pod and answers.
func (h *Handler) admit(req *admissionv1.AdmissionRequest, pod *corev1.Pod) admission.Response {
	res := injectForPatch(pod, h.Config)

	var resp admission.Response
	switch res.Outcome {
	case OutcomeDenied:
		resp = admission.Denied(res.Message())
	case OutcomeInjected:
		resp = admission.Patched("", Patch(pod, res.Pod)...)
	default:
		resp = admission.Allowed("")
	}
	resp = resp.WithWarnings(res.Warnings()...)

	h.count(res.Outcome, res.Reason)
	// Every note is logged; a plain admission only at -v=1 (the hot path
	// builds no logger when nothing is to be said).
	if len(res.Notes) > 0 || h.Log.V(1).Enabled() {
		log := h.Log.WithValues("namespace", req.Namespace, "pod", podLogName(pod, req.Name), "uid", string(req.UID),
			"outcome", string(res.Outcome), "dryRun", req.DryRun != nil && *req.DryRun)
		if res.Reason != ReasonNone {
			log = log.WithValues("reason", string(res.Reason))
		}
		for _, n := range res.Notes {
			log.Info(n.Message, "note", string(n.Reason))
		}
		log.V(1).Info("admitted")
	}
	return resp
}

func (h *Handler) count(o Outcome, r Reason) {
	if h.Metrics != nil {
		h.Metrics.Admissions.WithLabelValues(string(o), string(r)).Inc()
	}
}

func podLogName(p *corev1.Pod, reqName string) string {
	switch {
	case p.Name != "":
		return p.Name
	case reqName != "":
		return reqName
	case p.GenerateName != "":
		return p.GenerateName + "*"
	}
	return ""
}
