package kubernetes

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

// objects are the manifests' documents, decoded.
type objects struct {
	namespaces   []*corev1.Namespace
	services     []*corev1.Service
	statefulSets []*appsv1.StatefulSet
	deployments  []*appsv1.Deployment
	pdbs         []*policyv1.PodDisruptionBudget
	hpas         []*autoscalingv2.HorizontalPodAutoscaler
	ingresses    []*networkingv1.Ingress
}

// load decodes every document of every manifest strictly: a field the API
// type does not have (a typo, a field at the wrong level) is an error, as
// is a kind this test does not know.
func load(t *testing.T) objects {
	t.Helper()
	files, err := filepath.Glob("manifests/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	var o objects
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range splitDocs(b) {
			where := fmt.Sprintf("%s document %d", f, i+1)
			js, err := yaml.YAMLToJSON(doc)
			if err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			var tm metav1.TypeMeta
			if err := json.Unmarshal(js, &tm); err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			var into any
			switch tm.APIVersion + "/" + tm.Kind {
			case "v1/Namespace":
				v := &corev1.Namespace{}
				o.namespaces, into = append(o.namespaces, v), v
			case "v1/Service":
				v := &corev1.Service{}
				o.services, into = append(o.services, v), v
			case "apps/v1/StatefulSet":
				v := &appsv1.StatefulSet{}
				o.statefulSets, into = append(o.statefulSets, v), v
			case "apps/v1/Deployment":
				v := &appsv1.Deployment{}
				o.deployments, into = append(o.deployments, v), v
			case "policy/v1/PodDisruptionBudget":
				v := &policyv1.PodDisruptionBudget{}
				o.pdbs, into = append(o.pdbs, v), v
			case "autoscaling/v2/HorizontalPodAutoscaler":
				v := &autoscalingv2.HorizontalPodAutoscaler{}
				o.hpas, into = append(o.hpas, v), v
			case "networking.k8s.io/v1/Ingress":
				v := &networkingv1.Ingress{}
				o.ingresses, into = append(o.ingresses, v), v
			default:
				t.Fatalf("%s: unexpected %s %s", where, tm.APIVersion, tm.Kind)
			}
			dec := json.NewDecoder(bytes.NewReader(js))
			dec.DisallowUnknownFields()
			if err := dec.Decode(into); err != nil {
				t.Fatalf("%s (%s): %v", where, tm.Kind, err)
			}
		}
	}
	return o
}

// splitDocs splits a YAML stream at its "---" lines, dropping documents
// that hold only comments.
func splitDocs(b []byte) [][]byte {
	var docs [][]byte
	for _, d := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(b), -1) {
		for _, line := range strings.Split(d, "\n") {
			if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "#") {
				docs = append(docs, []byte(d))
				break
			}
		}
	}
	return docs
}

// nodeFlags returns the flags cmd/node defines, read from its source.
func nodeFlags(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile("../../cmd/node/flags.go")
	if err != nil {
		t.Fatal(err)
	}
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`fs\.\w+Var\([^,]+, "([a-z0-9-]+)"`).FindAllSubmatch(b, -1) {
		flags[string(m[1])] = true
	}
	if len(flags) < 20 {
		t.Fatalf("found %d flags in cmd/node/flags.go: the pattern no longer matches", len(flags))
	}
	return flags
}

func TestManifests(t *testing.T) {
	o := load(t)
	if len(o.statefulSets) != 1 || len(o.deployments) != 1 || len(o.hpas) != 1 || len(o.pdbs) != 2 {
		t.Fatalf("want 1 StatefulSet, 1 Deployment, 1 HPA, 2 PDBs; have %d, %d, %d, %d",
			len(o.statefulSets), len(o.deployments), len(o.hpas), len(o.pdbs))
	}
	core, gw := o.statefulSets[0], o.deployments[0]
	flags := nodeFlags(t)

	t.Run("every flag exists", func(t *testing.T) {
		for _, c := range append(core.Spec.Template.Spec.Containers, gw.Spec.Template.Spec.Containers...) {
			for _, a := range c.Args {
				name, _, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
				if !strings.HasPrefix(a, "--") || !flags[name] {
					t.Errorf("%s: argument %q is no flag of cmd/node", c.Name, a)
				}
			}
			for _, e := range c.Env {
				if f, ok := strings.CutPrefix(e.Name, "SECKILL_"); ok {
					f = strings.TrimSuffix(strings.ToLower(strings.ReplaceAll(f, "_", "-")), "-file")
					if !flags[f] {
						t.Errorf("%s: env %s names no flag of cmd/node", c.Name, e.Name)
					}
				}
			}
		}
	})

	t.Run("core keeps a quorum", func(t *testing.T) {
		n := *core.Spec.Replicas
		if n%2 == 0 || n < 3 {
			t.Errorf("core replicas %d: want an odd number, at least 3", n)
		}
		args := core.Spec.Template.Spec.Containers[0].Args
		if !slices.Contains(args, fmt.Sprintf("--bootstrap-expect=%d", n)) {
			t.Errorf("core args %v: want --bootstrap-expect=%d", args, n)
		}
		pdb := pdbFor(t, o, core.Spec.Template.Labels)
		if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 {
			t.Errorf("core PDB maxUnavailable %v: want 1 (a majority of %d stays)", pdb.Spec.MaxUnavailable, n)
		}
		if core.Spec.PodManagementPolicy != appsv1.ParallelPodManagement {
			t.Error("core pods must start in parallel: each waits for the others to bootstrap")
		}
		if len(core.Spec.VolumeClaimTemplates) != 1 {
			t.Error("each core node needs its own volume")
		}
		headless := serviceNamed(t, o, core.Spec.ServiceName)
		if headless.Spec.ClusterIP != corev1.ClusterIPNone || !headless.Spec.PublishNotReadyAddresses {
			t.Errorf("service %s: want headless and publishing unready pods (they bootstrap through it)", headless.Name)
		}
		for i := range n {
			peer := fmt.Sprintf("%s-%d.%s.%s.svc:7946", core.Name, i, core.Spec.ServiceName, core.Namespace)
			if !strings.Contains(strings.Join(args, " "), peer) {
				t.Errorf("core --join lacks %s", peer)
			}
		}
	})

	t.Run("gateways hold nothing", func(t *testing.T) {
		c := gw.Spec.Template.Spec.Containers[0]
		if !slices.Contains(c.Args, "--role=gateway") {
			t.Errorf("gateway args %v: want --role=gateway", c.Args)
		}
		for _, a := range c.Args {
			if strings.HasPrefix(a, "--raft") || strings.HasPrefix(a, "--bootstrap") {
				t.Errorf("gateway arg %s: a gateway holds no Raft seat", a)
			}
		}
		for _, e := range c.Env {
			if e.Name == "SECKILL_ORDERS_DSN_FILE" {
				t.Error("a gateway must not get the order store's DSN")
			}
		}
		if len(c.Resources.Requests) == 0 || c.Resources.Requests.Cpu().IsZero() {
			t.Error("gateway: the HPA's CPU target needs a CPU request")
		}
		if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
			t.Error("gateway: want a /readyz readiness probe")
		}
		pdbFor(t, o, gw.Spec.Template.Labels)
	})

	t.Run("the article's autoscaler", func(t *testing.T) {
		h := o.hpas[0]
		if h.Spec.ScaleTargetRef.Kind != "Deployment" || h.Spec.ScaleTargetRef.Name != gw.Name {
			t.Errorf("HPA targets %s %s; want Deployment %s", h.Spec.ScaleTargetRef.Kind, h.Spec.ScaleTargetRef.Name, gw.Name)
		}
		if *h.Spec.MinReplicas != 5 || h.Spec.MaxReplicas != 50 {
			t.Errorf("HPA %d..%d; want 5..50", *h.Spec.MinReplicas, h.Spec.MaxReplicas)
		}
		var cpu, rps bool
		for _, m := range h.Spec.Metrics {
			switch {
			case m.Type == autoscalingv2.ResourceMetricSourceType && m.Resource.Name == corev1.ResourceCPU:
				cpu = m.Resource.Target.AverageUtilization != nil && *m.Resource.Target.AverageUtilization == 70
			case m.Type == autoscalingv2.PodsMetricSourceType:
				rps = m.Pods.Target.AverageValue != nil && m.Pods.Target.AverageValue.Value() == 1000
			}
		}
		if !cpu || !rps {
			t.Errorf("HPA metrics %+v: want CPU at 70%% and 1,000 requests/s per pod", h.Spec.Metrics)
		}
	})

	t.Run("services and the ingress reach pods", func(t *testing.T) {
		pods := []map[string]string{core.Spec.Template.Labels, gw.Spec.Template.Labels}
		for _, s := range o.services {
			sel := labels.SelectorFromSet(s.Spec.Selector)
			if !slices.ContainsFunc(pods, func(l map[string]string) bool { return sel.Matches(labels.Set(l)) }) {
				t.Errorf("service %s selects no pod template", s.Name)
			}
		}
		for _, ing := range o.ingresses {
			for _, r := range ing.Spec.Rules {
				for _, p := range r.HTTP.Paths {
					serviceNamed(t, o, p.Backend.Service.Name)
				}
			}
		}
	})
}

func pdbFor(t *testing.T, o objects, podLabels map[string]string) *policyv1.PodDisruptionBudget {
	t.Helper()
	for _, p := range o.pdbs {
		sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
		if err != nil {
			t.Fatal(err)
		}
		if sel.Matches(labels.Set(podLabels)) {
			return p
		}
	}
	t.Fatalf("no PodDisruptionBudget selects pods labelled %v", podLabels)
	return nil
}

func serviceNamed(t *testing.T, o objects, name string) *corev1.Service {
	t.Helper()
	for _, s := range o.services {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no service %s", name)
	return nil
}
