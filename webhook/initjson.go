package webhook

import (
	"bytes"
	"encoding/json"
	"sync"

	corev1 "k8s.io/api/core/v1"

	"github.com/guardchain/guardchain/internal/bufpool"
)

// The init containers' JSON, encoded once. They are most of a patch (two
// kilobytes of three for a small pod) and, encoded by reflection, the
// costliest part of its encoding; yet sandboxes with the same settings and
// target image get the same containers, so each is encoded once and looked
// up by its protobuf encoding afterwards. That encoding is an exact key:
// it holds every field the JSON holds, and keeps apart every two values the
// JSON tells apart (TestContainerProtobufKeepsApartWhatJSONDoes walks the
// type to prove it for each Kubernetes release the module builds against).

const (
	// containerJSONEntries bounds the memo: a pod's annotations choose the
	// owner and settings, so a client can make each container new. When
	// full, the memo starts again: a client churning it costs every pod an
	// encoding, as without the memo, and never a wrong one.
	containerJSONEntries = 256
	// containerJSONMaxKey leaves out a container whose encoding is larger
	// (a writer that copies a target's long env for subPathExpr): guardchain's
	// own are about 1 KB, so the memo stays under a few megabytes.
	containerJSONMaxKey = 4 << 10
)

var containerJSONMemo = struct {
	sync.RWMutex
	m map[string]json.RawMessage
}{m: make(map[string]json.RawMessage)}

// containerJSON is json.Marshal(c), memoised. The bytes are shared: the
// caller must not change them.
func containerJSON(c *corev1.Container) (json.RawMessage, error) {
	n := c.Size()
	if n > containerJSONMaxKey {
		return json.Marshal(c)
	}
	buf := bufpool.Get()
	defer bufpool.Put(buf)
	buf.Grow(n)
	key := buf.AvailableBuffer()[:n]
	if _, err := c.MarshalToSizedBuffer(key); err != nil {
		return nil, err
	}
	containerJSONMemo.RLock()
	out, ok := containerJSONMemo.m[string(key)]
	containerJSONMemo.RUnlock()
	if ok {
		return out, nil
	}
	out, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	containerJSONMemo.Lock()
	if len(containerJSONMemo.m) >= containerJSONEntries {
		clear(containerJSONMemo.m)
	}
	containerJSONMemo.m[string(key)] = out
	containerJSONMemo.Unlock()
	return out, nil
}

// containerValue is c as a patch value: its JSON, or c itself where that
// cannot be had (the patch's encoder then reports why).
func containerValue(c *corev1.Container) any {
	if b, err := containerJSON(c); err == nil {
		return b
	}
	return c
}

// containersValue is cs as a patch value, as containerValue.
func containersValue(cs []corev1.Container) any {
	buf := bytes.NewBuffer(make([]byte, 0, 2048*len(cs)))
	buf.WriteByte('[')
	for i := range cs {
		b, err := containerJSON(&cs[i])
		if err != nil {
			return cs
		}
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(b)
	}
	buf.WriteByte(']')
	return json.RawMessage(buf.Bytes())
}
