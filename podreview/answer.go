package podreview

import (
	"bytes"
	"encoding/base64"

	admissionv1 "k8s.io/api/admission/v1"
)

// encodeAnswer writes the v1 AdmissionReview carrying r, as
// json.NewEncoder(buf).Encode writes it (the same bytes, newline included),
// with the response's fields written in order instead of found by
// reflection, and the patch's base64 appended in place. Values other than
// the patch (the status, a map, a list) are encoded as encoding/json
// does. TestAnswerFieldsAreKnown fails when a Kubernetes release adds a
// field to AdmissionResponse, which this would leave out.
func encodeAnswer(buf *bytes.Buffer, r *admissionv1.AdmissionResponse) error {
	value := valueWriter(buf)
	buf.WriteString(`{"kind":"` + reviewKind + `","apiVersion":"` + reviewAPIVersion + `","response":{"uid":`)
	if err := value(string(r.UID)); err != nil {
		return err
	}
	if r.Allowed {
		buf.WriteString(`,"allowed":true`)
	} else {
		buf.WriteString(`,"allowed":false`)
	}
	if r.Result != nil {
		buf.WriteString(`,"status":`)
		if err := value(r.Result); err != nil {
			return err
		}
	}
	if len(r.Patch) > 0 {
		buf.WriteString(`,"patch":"`)
		buf.Grow(base64.StdEncoding.EncodedLen(len(r.Patch)))
		buf.Write(base64.StdEncoding.AppendEncode(buf.AvailableBuffer(), r.Patch))
		buf.WriteByte('"')
	}
	if r.PatchType != nil {
		buf.WriteString(`,"patchType":`)
		if err := value(string(*r.PatchType)); err != nil {
			return err
		}
	}
	if len(r.AuditAnnotations) > 0 {
		buf.WriteString(`,"auditAnnotations":`)
		if err := value(r.AuditAnnotations); err != nil {
			return err
		}
	}
	if len(r.Warnings) > 0 {
		buf.WriteString(`,"warnings":`)
		if err := value(r.Warnings); err != nil {
			return err
		}
	}
	buf.WriteString("}}\n")
	return nil
}
