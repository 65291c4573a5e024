package webhook

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	"gomodules.xyz/jsonpatch/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
)

// Patch returns the JSON patch that turns orig into mutated, for the fields
// Inject changes: annotations, volumes, each container's mounts and env, and
// the init containers. It never rewrites anything else, so fields this build
// does not know (from a newer API server) pass through untouched, and it costs
// no re-encoding of the whole pod. Tests apply it to every golden pod and
// compare with Inject's result.
func Patch(orig, mutated *corev1.Pod) []jsonpatch.JsonPatchOperation {
	var ops []jsonpatch.JsonPatchOperation
	add := func(path string, v any) {
		ops = append(ops, jsonpatch.JsonPatchOperation{Operation: "add", Path: path, Value: v})
	}

	switch {
	case reflect.ValueOf(orig.ObjectMeta).IsZero() && len(mutated.Annotations) > 0:
		// No metadata at all (only a malformed request has none): a pointer
		// below /metadata would not apply.
		add("/metadata", map[string]any{"annotations": mutated.Annotations})
	case len(orig.Annotations) == 0 && len(mutated.Annotations) > 0:
		add("/metadata/annotations", mutated.Annotations)
	default:
		for _, k := range sortedKeys(mutated.Annotations) {
			if v, ok := orig.Annotations[k]; !ok || v != mutated.Annotations[k] {
				add("/metadata/annotations/"+escape(k), mutated.Annotations[k])
			}
		}
	}

	// Volumes: guardchain's own emptyDirs may be brought to the configured
	// size in place (ensureVolume); others are only appended, so only its
	// own are compared (a semantic comparison of every volume is a tenth of
	// an admission's cost). Values point into mutated: they encode as the
	// items do, without a copy of each.
	for i := range orig.Spec.Volumes {
		if n := orig.Spec.Volumes[i].Name; n != VolumeName && n != BinVolumeName {
			continue
		}
		if !equality.Semantic.DeepEqual(&orig.Spec.Volumes[i], &mutated.Spec.Volumes[i]) {
			ops = append(ops, jsonpatch.JsonPatchOperation{Operation: "replace", Path: fmt.Sprintf("/spec/volumes/%d", i), Value: &mutated.Spec.Volumes[i]})
		}
	}
	ops = appendList(ops, "/spec/volumes", orig.Spec.Volumes, mutated.Spec.Volumes)

	for i := range orig.Spec.Containers {
		ops = containerOps(ops, fmt.Sprintf("/spec/containers/%d", i), &orig.Spec.Containers[i], &mutated.Spec.Containers[i])
	}

	// Init containers: first the edits to others at their original indexes;
	// then, unless guardchain's are already in place, remove every one of
	// guardchain's (highest index first) and add the wanted ones at the front.
	n := 0
	for n < len(mutated.Spec.InitContainers) && IsOwnInitContainer(mutated.Spec.InitContainers[n].Name) {
		n++
	}
	// The others keep their order after guardchain's (ensureInitContainersFirst):
	// paired by it, not by name, which a pod not yet validated may repeat.
	others := mutated.Spec.InitContainers[n:]
	var own []int
	for i := range orig.Spec.InitContainers {
		o := &orig.Spec.InitContainers[i]
		if IsOwnInitContainer(o.Name) {
			own = append(own, i)
			continue
		}
		if k := i - len(own); k < len(others) {
			ops = containerOps(ops, fmt.Sprintf("/spec/initContainers/%d", i), o, &others[k])
		}
	}
	want := mutated.Spec.InitContainers[:n]
	if len(want) > 0 && !ownInPlace(orig.Spec.InitContainers, own, want) {
		if len(orig.Spec.InitContainers) == 0 {
			add("/spec/initContainers", containersValue(want))
		} else {
			for k := len(own) - 1; k >= 0; k-- {
				ops = append(ops, jsonpatch.JsonPatchOperation{Operation: "remove", Path: fmt.Sprintf("/spec/initContainers/%d", own[k])})
			}
			for j := range want {
				add(fmt.Sprintf("/spec/initContainers/%d", j), containerValue(&want[j]))
			}
		}
	}
	return ops
}

// ownInPlace: guardchain's init containers in orig (at indexes own) are
// exactly want, at the front.
func ownInPlace(orig []corev1.Container, own []int, want []corev1.Container) bool {
	if len(own) != len(want) {
		return false
	}
	for j, i := range own {
		if i != j || !equality.Semantic.DeepEqual(&orig[i], &want[j]) {
			return false
		}
	}
	return true
}

func containerOps(ops []jsonpatch.JsonPatchOperation, base string, o, m *corev1.Container) []jsonpatch.JsonPatchOperation {
	ops = appendList(ops, base+"/volumeMounts", o.VolumeMounts, m.VolumeMounts)
	for j := range o.Env {
		if o.Env[j].Value != m.Env[j].Value {
			// add, not replace: an empty value reaches us without its "value"
			// key, and replace needs its target to exist (RFC 6902, 4.3), so
			// a strict applier refuses the patch and with it the pod; add on
			// an object member sets it whether or not it exists.
			ops = append(ops, jsonpatch.JsonPatchOperation{Operation: "add", Path: fmt.Sprintf("%s/env/%d/value", base, j), Value: m.Env[j].Value})
		}
	}
	return appendList(ops, base+"/env", o.Env, m.Env)
}

// appendList adds the items mutated has beyond orig's length (Inject only
// appends to these lists).
func appendList[T any](ops []jsonpatch.JsonPatchOperation, path string, orig, mutated []T) []jsonpatch.JsonPatchOperation {
	switch {
	case len(mutated) == len(orig):
		return ops
	case len(orig) == 0:
		return append(ops, jsonpatch.JsonPatchOperation{Operation: "add", Path: path, Value: mutated})
	}
	for i := len(orig); i < len(mutated); i++ {
		ops = append(ops, jsonpatch.JsonPatchOperation{Operation: "add", Path: path + "/-", Value: &mutated[i]})
	}
	return ops
}

// pointerEscaper encodes a JSON pointer segment (RFC 6901). Built once: a
// Replacer builds its lookup tables on first use, which cost more than
// the rest of a patch.
var pointerEscaper = strings.NewReplacer("~", "~0", "/", "~1")

// escape encodes a JSON pointer segment (RFC 6901).
func escape(s string) string { return pointerEscaper.Replace(s) }

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
