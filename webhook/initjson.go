package webhook

import (
	"encoding/binary"
	"encoding/json"
	"sync"

	corev1 "k8s.io/api/core/v1"

	"github.com/guardchain/guardchain/internal/bufpool"
	"github.com/guardchain/guardchain/podreview"
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
	// memoEntries and memoMaxBytes bound the memo: a pod's annotations
	// choose the owner and settings, and a subPathExpr copies a target's env
	// into guardchain-init, so a client can make each container new and
	// large. When either bound would be passed, the memo starts again: a
	// client churning it costs every pod an encoding, as without the memo,
	// and never a wrong one.
	memoEntries  = 256
	memoMaxBytes = 2 << 20 // keys and JSON together
	// memoMaxKey and memoMaxEntry leave out what encodes larger:
	// guardchain's containers are about 1 KB each.
	memoMaxKey   = 8 << 10
	memoMaxEntry = memoMaxBytes / 64 // key and JSON
)

var memo = struct {
	sync.RWMutex
	m     map[string]podreview.Marshalled
	bytes int
}{m: make(map[string]podreview.Marshalled)}

// containerJSON is json.Marshal(c), memoised. The bytes are shared: the
// caller must not change them.
func containerJSON(c *corev1.Container) (podreview.Marshalled, error) {
	return memoised('c', func() ([]byte, error) { return json.Marshal(c) }, c)
}

// containersJSON is json.Marshal(cs), memoised as containerJSON.
func containersJSON(cs []corev1.Container) (podreview.Marshalled, error) {
	ptrs := make([]*corev1.Container, len(cs))
	for i := range cs {
		ptrs[i] = &cs[i]
	}
	return memoised('l', func() ([]byte, error) { return json.Marshal(cs) }, ptrs...)
}

// memoised looks marshal's result up by the key kind, then each of cs's
// length and protobuf encoding, and marshals what is not found.
func memoised(kind byte, marshal func() ([]byte, error), cs ...*corev1.Container) (podreview.Marshalled, error) {
	n := 1
	for i := range cs {
		n += binary.MaxVarintLen64 + cs[i].Size()
	}
	if n > memoMaxKey {
		return marshal()
	}
	buf := bufpool.Get()
	defer bufpool.Put(buf)
	buf.Grow(n)
	key := append(buf.AvailableBuffer(), kind)
	for i := range cs {
		size := cs[i].Size()
		key = binary.AppendUvarint(key, uint64(size))
		key = key[:len(key)+size]
		if _, err := cs[i].MarshalToSizedBuffer(key[len(key)-size:]); err != nil {
			return nil, err
		}
	}
	memo.RLock()
	out, ok := memo.m[string(key)]
	memo.RUnlock()
	if ok {
		return out, nil
	}
	b, err := marshal()
	if err != nil {
		return nil, err
	}
	out = b
	size := len(key) + len(out)
	if size > memoMaxEntry {
		return out, nil
	}
	memo.Lock()
	if len(memo.m) >= memoEntries || memo.bytes+size > memoMaxBytes {
		clear(memo.m)
		memo.bytes = 0
	}
	if _, ok := memo.m[string(key)]; !ok {
		memo.m[string(key)] = out
		memo.bytes += size
	}
	memo.Unlock()
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
	if b, err := containersJSON(cs); err == nil {
		return b
	}
	return cs
}
