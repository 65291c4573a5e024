package audit

import (
	"fmt"
	"strings"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/ext"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
)

// Judge says of a running pod what the backstop says of it at admission: it
// evaluates the ValidatingAdmissionPolicy's own expressions (the cluster's,
// or the one the webhook package builds for a config), so the audit and the
// policy cannot disagree on what a guarded pod is. A pod is judged as if it
// were being created.
type Judge struct {
	// selector is the policy's objectSelector (everything when it has none).
	selector    labels.Selector
	conditions  []cel.Program
	variables   []variable
	validations []validation
}

type variable struct {
	name string
	prg  cel.Program
}

type validation struct {
	prg, message cel.Program
	text         string
}

// NewJudge compiles a policy's match conditions, variables and validations.
func NewJudge(spec admissionregistrationv1.ValidatingAdmissionPolicySpec) (*Judge, error) {
	env, err := cel.NewEnv(
		cel.Variable("object", cel.DynType), cel.Variable("oldObject", cel.DynType),
		cel.Variable("request", cel.DynType), cel.Variable("variables", cel.DynType),
		ext.Strings(), ext.Lists())
	if err != nil {
		return nil, fmt.Errorf("CEL environment: %w", err)
	}
	compile := func(what, expr string) (cel.Program, error) {
		ast, iss := env.Compile(expr)
		if iss.Err() != nil {
			return nil, fmt.Errorf("compiling %s: %w", what, iss.Err())
		}
		prg, err := env.Program(ast)
		if err != nil {
			return nil, fmt.Errorf("compiling %s: %w", what, err)
		}
		return prg, nil
	}
	j := &Judge{selector: labels.Everything()}
	if mc := spec.MatchConstraints; mc != nil && mc.ObjectSelector != nil {
		if j.selector, err = metav1.LabelSelectorAsSelector(mc.ObjectSelector); err != nil {
			return nil, fmt.Errorf("the policy's objectSelector: %w", err)
		}
	}
	for _, c := range spec.MatchConditions {
		p, err := compile("match condition "+c.Name, c.Expression)
		if err != nil {
			return nil, err
		}
		j.conditions = append(j.conditions, p)
	}
	for _, v := range spec.Variables {
		p, err := compile("variable "+v.Name, v.Expression)
		if err != nil {
			return nil, err
		}
		j.variables = append(j.variables, variable{name: v.Name, prg: p})
	}
	for i, v := range spec.Validations {
		p, err := compile(fmt.Sprintf("validation %d", i+1), v.Expression)
		if err != nil {
			return nil, err
		}
		val := validation{prg: p, text: v.Message}
		if v.MessageExpression != "" {
			if val.message, err = compile(fmt.Sprintf("validation %d message", i+1), v.MessageExpression); err != nil {
				return nil, err
			}
		}
		j.validations = append(j.validations, val)
	}
	return j, nil
}

// activation is one pod, as the API server hands it to CEL at create.
func activation(p *corev1.Pod) (map[string]any, error) {
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(p)
	if err != nil {
		return nil, fmt.Errorf("converting pod %s/%s: %w", p.Namespace, p.Name, err)
	}
	return map[string]any{"object": obj, "oldObject": nil, "request": map[string]any{"operation": "CREATE"}, "variables": map[string]any{}}, nil
}

// Selects reports whether the policy applies to p (its objectSelector and
// match conditions, as at create: the scope the webhook and the backstop
// share; an update may not change the labels the selector reads on a pod
// guardchain injected).
func (j *Judge) Selects(p *corev1.Pod) (bool, error) {
	if !j.selector.Matches(labels.Set(p.Labels)) {
		return false, nil
	}
	act, err := activation(p)
	if err != nil {
		return false, err
	}
	for _, c := range j.conditions {
		out, _, err := c.Eval(act)
		if err != nil {
			return false, fmt.Errorf("match condition: %w", err)
		}
		if out != types.True {
			return false, nil
		}
	}
	return true, nil
}

// Problems is every validation p fails, each the policy's message; none
// means the backstop would admit p as guarded. An expression that cannot be
// evaluated is a problem too (the policy fails closed).
func (j *Judge) Problems(p *corev1.Pod) ([]string, error) {
	act, err := activation(p)
	if err != nil {
		return nil, err
	}
	vars := act["variables"].(map[string]any)
	for _, v := range j.variables {
		out, _, err := v.prg.Eval(act)
		if err != nil {
			// Left unset: a validation that reads it fails below.
			continue
		}
		vars[v.name] = out // a CEL value reads back as itself
	}
	var problems []string
	for _, v := range j.validations {
		out, _, err := v.prg.Eval(act)
		if err == nil && out == types.True {
			continue
		}
		msg := v.text
		if v.message != nil {
			if m, _, merr := v.message.Eval(act); merr == nil {
				if s, ok := m.Value().(string); ok {
					msg = s
				}
			}
		}
		if err != nil {
			msg += " (" + err.Error() + ")"
		}
		problems = append(problems, msg)
	}
	return problems, nil
}

// trimLead drops the policy's "guardchain: pod NS/NAME: " lead, which the
// audit's row already says.
func trimLead(msg string, p *corev1.Pod) string {
	for _, lead := range []string{"guardchain: pod " + p.Namespace + "/" + p.Name + ": ", "guardchain: pod " + p.Namespace + "/" + p.Name + " ", "guardchain: "} {
		if strings.HasPrefix(msg, lead) {
			return strings.TrimPrefix(msg, lead)
		}
	}
	return msg
}
