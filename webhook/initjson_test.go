package webhook

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// TestContainerProtobufKeepsApartWhatJSONDoes proves the memo's key exact:
// two containers with one protobuf encoding have one JSON encoding. The
// protobuf encoding leaves out nothing the JSON holds (every field has a
// protobuf number), and the only values it does not tell apart that JSON
// might are a nil and an empty list or map, which JSON too leaves out
// (omitempty). Types that encode themselves are named, each checked below.
func TestContainerProtobufKeepsApartWhatJSONDoes(t *testing.T) {
	problems, walked := keyProblems(reflect.TypeFor[corev1.Container]())
	for _, p := range problems {
		t.Error(p)
	}
	if walked < 10 {
		t.Fatalf("walked only %d types of a Container", walked)
	}
	// The check finds what would make the key inexact.
	type bad struct {
		NoNumber string            `json:"noNumber"`
		Nullable []string          `json:"nullable" protobuf:"bytes,2,rep,name=nullable"`
		Map      map[string]string `json:"map" protobuf:"bytes,3,rep,name=map"`
		Self     json.RawMessage   `json:"self,omitempty" protobuf:"bytes,4,opt,name=self"`
	}
	if problems, _ := keyProblems(reflect.TypeFor[bad]()); len(problems) != 4 {
		t.Errorf("a type with four problems: found %d: %q", len(problems), problems)
	}
	// The self-encoding types: equal protobuf encodings, equal JSON.
	for _, tt := range []struct{ a, b any }{
		{resource.MustParse("100m"), resource.MustParse("0.1")},
		{resource.MustParse("1Gi"), resource.MustParse("1024Mi")},
		{resource.MustParse("1Gi"), resource.MustParse("1G")},
		{intstr.FromInt32(8080), intstr.FromString("8080")},
		{intstr.FromInt32(0), intstr.FromString("")},
	} {
		a, b := protoOf(t, tt.a), protoOf(t, tt.b)
		ja, _ := json.Marshal(tt.a)
		jb, _ := json.Marshal(tt.b)
		if bytes.Equal(a, b) && !bytes.Equal(ja, jb) {
			t.Errorf("%v and %v: one protobuf encoding, two JSON (%s, %s)", tt.a, tt.b, ja, jb)
		}
	}
}

// selfEncoding are the types in a Container with their own JSON encoding
// whose protobuf encoding is known to match it: Quantity encodes String()
// in both, IntOrString the one value its Type names.
var selfEncoding = map[reflect.Type]bool{
	reflect.TypeFor[resource.Quantity]():  true,
	reflect.TypeFor[intstr.IntOrString](): true,
}

// keyProblems walks typ and says where its protobuf encoding would not be
// an exact key for its JSON encoding; walked counts the struct types seen.
func keyProblems(typ reflect.Type) (problems []string, walked int) {
	seen := map[reflect.Type]bool{}
	var walk func(path string, typ reflect.Type)
	walk = func(path string, typ reflect.Type) {
		for {
			if selfEncoding[typ] {
				return
			}
			if reflect.PointerTo(typ).Implements(reflect.TypeFor[json.Marshaler]()) {
				problems = append(problems, fmt.Sprintf("%s: %s encodes itself; check that its protobuf encoding keeps apart what its JSON does, and name it", path, typ))
				return
			}
			if k := typ.Kind(); k != reflect.Pointer && k != reflect.Slice && k != reflect.Map {
				break
			}
			typ = typ.Elem()
		}
		if typ.Kind() != reflect.Struct || seen[typ] {
			return
		}
		seen[typ] = true
		for i := range typ.NumField() {
			f := typ.Field(i)
			name := path + "." + f.Name
			jsonTag := f.Tag.Get("json")
			if !f.IsExported() || jsonTag == "-" {
				continue
			}
			if f.Tag.Get("protobuf") == "" {
				problems = append(problems, name+" has no protobuf number: the key would not hold it")
			}
			if k := f.Type.Kind(); (k == reflect.Slice || k == reflect.Map) && !strings.Contains(jsonTag, ",omitempty") {
				problems = append(problems, fmt.Sprintf("%s: JSON writes a nil %s as null and an empty one otherwise; protobuf does not tell them apart", name, k))
			}
			walk(name, f.Type)
		}
	}
	walk(typ.Name(), typ)
	return problems, len(seen)
}

func protoOf(t *testing.T, v any) []byte {
	p := reflect.New(reflect.TypeOf(v))
	p.Elem().Set(reflect.ValueOf(v))
	b, err := p.Interface().(interface{ Marshal() ([]byte, error) }).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestContainerJSONIsMarshal: every init container the corpus renders is
// encoded as json.Marshal encodes it, first and from the memo, and so is a
// container the memo leaves out for its size.
func TestContainerJSONIsMarshal(t *testing.T) {
	var cs []corev1.Container
	for _, g := range goldens(t) {
		res := Inject(readPod(t, g.in), testConfig(t, g))
		var own []corev1.Container
		for _, c := range res.Pod.Spec.InitContainers {
			if IsOwnInitContainer(c.Name) {
				own = append(own, c)
			}
		}
		if n := 1 + len(own)*binary.MaxVarintLen64 + (&corev1.PodSpec{InitContainers: own}).Size(); n > memoMaxKey {
			t.Errorf("%s: guardchain's init containers take %d bytes encoded, above the memo's %d: they would be encoded on every admission", g.name, n, memoMaxKey)
		}
		got, err := containersJSON(own)
		if err != nil {
			t.Fatal(err)
		}
		if want, _ := json.Marshal(own); !bytes.Equal(got, want) {
			t.Fatalf("%s: list memoised\n%s\nmarshalled\n%s", g.name, got, want)
		}
		if n := 1 + len(own)*binary.MaxVarintLen64 + (&corev1.PodSpec{InitContainers: own}).Size() + len(got); n > memoMaxEntry {
			t.Errorf("%s: guardchain's init containers take %d bytes of key and JSON, above the memo's %d an entry: they would be encoded on every admission", g.name, n, memoMaxEntry)
		}
		cs = append(cs, res.Pod.Spec.InitContainers...)
	}
	big := corev1.Container{Name: "big"}
	for i := range 2000 {
		big.Env = append(big.Env, corev1.EnvVar{Name: fmt.Sprintf("V%d", i), Value: "<&>"})
	}
	cs = append(cs, big, corev1.Container{Name: "html", Args: []string{"<&>"}, Env: []corev1.EnvVar{}})
	for round := range 2 {
		for i := range cs {
			got, err := containerJSON(&cs[i])
			if err != nil {
				t.Fatal(err)
			}
			want, _ := json.Marshal(&cs[i])
			if !bytes.Equal(got, want) {
				t.Fatalf("round %d, %s: memoised\n%s\nmarshalled\n%s", round, cs[i].Name, got, want)
			}
		}
	}
	// One container and a list of it are told apart.
	one, _ := containerJSON(&cs[0])
	list, _ := containersJSON(cs[:1])
	if want, _ := json.Marshal(cs[:1]); !bytes.Equal(list, want) || bytes.Equal(one, list) {
		t.Fatalf("list of one:\n%s\nwant\n%s", list, want)
	}
}

// TestContainerJSONMemoIsBounded: containers made new by each pod's
// settings never make the memo hold more than its bounds, in entries and
// in bytes, however large their JSON is against their key (each '<' takes
// one byte in protobuf and six in JSON), and a large one is not held.
func TestContainerJSONMemoIsBounded(t *testing.T) {
	big := corev1.Container{Name: "big", Args: []string{strings.Repeat("x", memoMaxKey)}}
	if _, err := containerJSON(&big); err != nil {
		t.Fatal(err)
	}
	memo.RLock()
	for k := range memo.m {
		if len(k) > memoMaxKey {
			t.Errorf("the memo holds a %d-byte key, above %d", len(k), memoMaxKey)
		}
	}
	memo.RUnlock()
	held := func() (n, bytes int) {
		memo.RLock()
		defer memo.RUnlock()
		for k, v := range memo.m {
			bytes += len(k) + len(v)
		}
		if bytes != memo.bytes {
			t.Fatalf("the memo counts %d bytes and holds %d", memo.bytes, bytes)
		}
		return len(memo.m), bytes
	}
	for _, pad := range []int{0, 1000, 5000, 7000} {
		for i := range 3 * memoEntries {
			c := corev1.Container{Name: "c", Env: []corev1.EnvVar{
				{Name: "GUARDCHAIN_OWNERSHIP", Value: fmt.Sprintf("uid:%d:%d", i, i)},
				{Name: "PAD", Value: strings.Repeat("<", pad)}}}
			got, err := containerJSON(&c)
			if err != nil {
				t.Fatal(err)
			}
			if want, _ := json.Marshal(&c); !bytes.Equal(got, want) {
				t.Fatalf("pad %d, container %d: wrong JSON", pad, i)
			}
			if n, b := held(); n > memoEntries || b > memoMaxBytes {
				t.Fatalf("pad %d, after %d containers the memo holds %d entries, %d bytes: above %d, %d", pad, i+1, n, b, memoEntries, memoMaxBytes)
			}
		}
	}
}
