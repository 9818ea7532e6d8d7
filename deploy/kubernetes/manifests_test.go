// Package kubernetes_test parses every manifest of deploy/kubernetes and
// checks it against the code: kinds, probe paths and ports against the
// operational server and WITHDRAW_HTTP_ADDR, every WITHDRAW_* name against
// internal/config, commands against the binaries of the image, security
// settings, selectors, and that the Secret holds placeholders only.
package kubernetes_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/yaml.v3"

	"github.com/paycore/withdraw/internal/config"
	"github.com/paycore/withdraw/internal/httpserver"
	"github.com/paycore/withdraw/internal/provider"
)

type probe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"`
	} `yaml:"httpGet"`
}

type container struct {
	Name    string   `yaml:"name"`
	Image   string   `yaml:"image"`
	Command []string `yaml:"command"`
	Ports   []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	EnvFrom []struct {
		ConfigMapRef *struct {
			Name string `yaml:"name"`
		} `yaml:"configMapRef"`
	} `yaml:"envFrom"`
	Env []struct {
		Name      string `yaml:"name"`
		ValueFrom *struct {
			SecretKeyRef *struct {
				Name string `yaml:"name"`
				Key  string `yaml:"key"`
			} `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	ReadinessProbe *probe `yaml:"readinessProbe"`
	LivenessProbe  *probe `yaml:"livenessProbe"`
	Resources      struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	SecurityContext struct {
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		ReadOnlyRootFilesystem   bool  `yaml:"readOnlyRootFilesystem"`
		Capabilities             struct {
			Drop []string `yaml:"drop"`
		} `yaml:"capabilities"`
	} `yaml:"securityContext"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
	} `yaml:"volumeMounts"`
}

type object struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name   string            `yaml:"name"`
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Data       map[string]string `yaml:"data"`
	StringData map[string]string `yaml:"stringData"`
	Spec       struct {
		Replicas *int `yaml:"replicas"`
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		// Service selector is a plain map.
		ServiceSelector map[string]string `yaml:"-"`
		MinAvailable    any               `yaml:"minAvailable"`
		MaxUnavailable  any               `yaml:"maxUnavailable"`
		Ports           []struct {
			Port       int    `yaml:"port"`
			TargetPort any    `yaml:"targetPort"`
			Name       string `yaml:"name"`
		} `yaml:"ports"`
		Template struct {
			Metadata struct {
				Labels map[string]string `yaml:"labels"`
			} `yaml:"metadata"`
			Spec struct {
				SecurityContext struct {
					RunAsNonRoot bool `yaml:"runAsNonRoot"`
					RunAsUser    int  `yaml:"runAsUser"`
				} `yaml:"securityContext"`
				Containers []container `yaml:"containers"`
				Volumes    []struct {
					Name      string `yaml:"name"`
					ConfigMap *struct {
						Name string `yaml:"name"`
					} `yaml:"configMap"`
					Secret *struct {
						SecretName string `yaml:"secretName"`
					} `yaml:"secret"`
				} `yaml:"volumes"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
	raw map[string]any
}

func loadAll(t *testing.T) []object {
	t.Helper()
	files, err := filepath.Glob("*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	var out []object
	for _, f := range files {
		if f == "kustomization.yaml" {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for {
			var node yaml.Node
			err := dec.Decode(&node)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			var o object
			if err := node.Decode(&o); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if err := node.Decode(&o.raw); err != nil {
				t.Fatal(err)
			}
			if o.Kind == "Service" {
				spec, _ := o.raw["spec"].(map[string]any)
				sel, _ := spec["selector"].(map[string]any)
				o.Spec.ServiceSelector = map[string]string{}
				for k, v := range sel {
					o.Spec.ServiceSelector[k], _ = v.(string)
				}
			}
			if o.Kind == "" || o.APIVersion == "" || o.Metadata.Name == "" {
				t.Errorf("%s: a document without kind, apiVersion or name", f)
			}
			out = append(out, o)
		}
	}
	// kustomization lists every file.
	k, err := os.ReadFile("kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if f != "kustomization.yaml" && !strings.Contains(string(k), "- "+f) {
			t.Errorf("kustomization.yaml does not list %s", f)
		}
	}
	return out
}

func find(objs []object, kind, name string) *object {
	for i := range objs {
		if objs[i].Kind == kind && objs[i].Metadata.Name == name {
			return &objs[i]
		}
	}
	return nil
}

func subset(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func TestManifests(t *testing.T) {
	objs := loadAll(t)
	kinds := map[string]int{}
	for _, o := range objs {
		kinds[o.Kind]++
	}
	for kind, n := range map[string]int{"Deployment": 2, "PodDisruptionBudget": 2, "ConfigMap": 2, "Secret": 1, "Service": 2} {
		if kinds[kind] != n {
			t.Errorf("%d %s, want %d (all: %v)", kinds[kind], kind, n, kinds)
		}
	}
	settings := map[string]config.Setting{}
	for _, s := range config.Settings() {
		settings[s.Env] = s
	}
	settingsCM := find(objs, "ConfigMap", "withdraw-settings")
	providersCM := find(objs, "ConfigMap", "withdraw-providers")
	secret := find(objs, "Secret", "withdraw-secrets")
	if settingsCM == nil || providersCM == nil || secret == nil {
		t.Fatal("ConfigMaps withdraw-settings, withdraw-providers and Secret withdraw-secrets are required")
	}
	for k := range settingsCM.Data {
		if _, ok := settings[k]; !ok {
			t.Errorf("ConfigMap withdraw-settings: %s is not a setting of internal/config", k)
		}
	}
	_, port, err := net.SplitHostPort(settingsCM.Data["WITHDRAW_HTTP_ADDR"])
	if err != nil {
		t.Fatalf("WITHDRAW_HTTP_ADDR: %v", err)
	}

	// The probe paths are served by the operational server.
	srv := httptest.NewServer(httpserver.New(prometheus.NewRegistry()).Mux)
	defer srv.Close()
	served := func(path string) bool {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}

	for _, name := range []string{"consumer", "poller"} {
		d := find(objs, "Deployment", "withdraw-"+name)
		if d == nil {
			t.Errorf("no Deployment withdraw-%s", name)
			continue
		}
		if !subset(d.Spec.Selector.MatchLabels, d.Spec.Template.Metadata.Labels) {
			t.Errorf("%s: selector %v does not match the pod labels", name, d.Spec.Selector.MatchLabels)
		}
		ps := d.Spec.Template.Spec.SecurityContext
		if !ps.RunAsNonRoot || ps.RunAsUser == 0 {
			t.Errorf("%s: pod must run as non-root", name)
		}
		if len(d.Spec.Template.Spec.Containers) != 1 {
			t.Fatalf("%s: want one container", name)
		}
		c := d.Spec.Template.Spec.Containers[0]
		if len(c.Command) != 1 || c.Command[0] != name {
			t.Errorf("%s: command %v", name, c.Command)
		}
		if !strings.HasPrefix(c.Image, "paycore/withdraw") {
			t.Errorf("%s: image %s", name, c.Image)
		}
		if len(c.Ports) != 1 || c.Ports[0].Name != "http" || port != itoa(c.Ports[0].ContainerPort) {
			t.Errorf("%s: container port %+v, want http = %s (WITHDRAW_HTTP_ADDR)", name, c.Ports, port)
		}
		for kind, p := range map[string]*probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
			want := map[string]string{"readiness": "/readyz", "liveness": "/healthz"}[kind]
			if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != want {
				t.Errorf("%s: %s probe %+v, want GET %s", name, kind, p, want)
				continue
			}
			if p.HTTPGet.Port != "http" && itoaAny(p.HTTPGet.Port) != port {
				t.Errorf("%s: %s probe port %v", name, kind, p.HTTPGet.Port)
			}
			if !served(p.HTTPGet.Path) {
				t.Errorf("%s: %s probe path %s is not served", name, kind, p.HTTPGet.Path)
			}
		}
		for _, r := range []string{"cpu", "memory"} {
			if c.Resources.Requests[r] == "" || c.Resources.Limits[r] == "" {
				t.Errorf("%s: resources %s request/limit missing", name, r)
			}
		}
		sc := c.SecurityContext
		if !sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || !slices.Contains(sc.Capabilities.Drop, "ALL") {
			t.Errorf("%s: container securityContext %+v", name, sc)
		}
		if len(c.EnvFrom) != 1 || c.EnvFrom[0].ConfigMapRef == nil || c.EnvFrom[0].ConfigMapRef.Name != "withdraw-settings" {
			t.Errorf("%s: envFrom %+v", name, c.EnvFrom)
		}
		for _, e := range c.Env {
			if _, ok := settings[e.Name]; !ok {
				t.Errorf("%s: env %s is not a setting of internal/config", name, e.Name)
			}
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				if r := e.ValueFrom.SecretKeyRef; r.Name != "withdraw-secrets" || secret.StringData[r.Key] == "" {
					t.Errorf("%s: env %s from missing secret key %+v", name, e.Name, r)
				}
			}
		}
		// Mounts: the providers file and the secret files where the
		// settings say they are.
		mounts := map[string]string{}
		for _, m := range c.VolumeMounts {
			mounts[m.Name] = m.MountPath
		}
		vols := map[string]string{}
		for _, v := range d.Spec.Template.Spec.Volumes {
			switch {
			case v.ConfigMap != nil:
				vols[v.Name] = "cm:" + v.ConfigMap.Name
			case v.Secret != nil:
				vols[v.Name] = "secret:" + v.Secret.SecretName
			default:
				vols[v.Name] = "other"
			}
		}
		for vol, src := range vols {
			if mounts[vol] == "" {
				t.Errorf("%s: volume %s (%s) not mounted", name, vol, src)
			}
		}
		fileIn := func(path string) (string, string) { // → source, key
			for vol, dir := range mounts {
				if filepath.Dir(path) == dir {
					return vols[vol], filepath.Base(path)
				}
			}
			return "", ""
		}
		for _, env := range []string{"WITHDRAW_CONFIG", "WITHDRAW_PII_KEYS_FILE", "WITHDRAW_ADMIN_TOKEN_FILE"} {
			src, key := fileIn(settingsCM.Data[env])
			switch {
			case src == "cm:withdraw-providers" && providersCM.Data[key] != "":
			case src == "secret:withdraw-secrets" && secret.StringData[key] != "":
			default:
				t.Errorf("%s: %s=%s is not a file of a mounted ConfigMap/Secret", name, env, settingsCM.Data[env])
			}
		}
		// PDB and Service select these pods.
		pdb := find(objs, "PodDisruptionBudget", "withdraw-"+name)
		if pdb == nil || !subset(pdb.Spec.Selector.MatchLabels, d.Spec.Template.Metadata.Labels) || (pdb.Spec.MinAvailable == nil) == (pdb.Spec.MaxUnavailable == nil) {
			t.Errorf("%s: PodDisruptionBudget missing, not selecting the pods, or without exactly one of minAvailable/maxUnavailable", name)
		} else if min, ok := pdb.Spec.MinAvailable.(int); ok && d.Spec.Replicas != nil && min >= *d.Spec.Replicas {
			t.Errorf("%s: minAvailable %d blocks every eviction with %d replicas", name, min, *d.Spec.Replicas)
		}
		svc := find(objs, "Service", "withdraw-"+name)
		if svc == nil || !subset(svc.Spec.ServiceSelector, d.Spec.Template.Metadata.Labels) || len(svc.Spec.Ports) != 1 ||
			(svc.Spec.Ports[0].TargetPort != "http" && itoaAny(svc.Spec.Ports[0].TargetPort) != port) {
			t.Errorf("%s: Service missing or not routing to the http port: %+v", name, svc)
		}
	}

	// The providers file parses, and its key files are in the Secret.
	cfg, err := provider.ParseConfig([]byte(providersCM.Data["withdraw.yaml"]))
	if err != nil {
		t.Fatalf("withdraw-providers/withdraw.yaml: %v", err)
	}
	for _, a := range cfg.Accounts {
		for _, f := range append([]string{a.PrivateKeyFile, a.PublicKeyFile, a.APIv3KeyFile, a.AllinpayPublicKeyFile}, a.PlatformCertFiles...) {
			if f == "" {
				continue
			}
			if filepath.Dir(f) != "/etc/withdraw/secrets" || secret.StringData[filepath.Base(f)] == "" {
				t.Errorf("account %s/%s: %s is not a key of withdraw-secrets", a.Provider, a.Name, f)
			}
		}
	}
	// Placeholders only: no real key, token or password in the repository.
	for k, v := range secret.StringData {
		if !strings.Contains(v, "REPLACE_ME") || strings.Contains(v, "-----BEGIN") {
			t.Errorf("Secret key %s does not hold a REPLACE_ME placeholder", k)
		}
	}
	if len(secret.Data) > 0 {
		t.Error("Secret has base64 data: keep placeholders in stringData")
	}
}

func itoa(n int) string { return formatInt(n) }

func formatInt(n int) string {
	b, _ := yaml.Marshal(n)
	return strings.TrimSpace(string(b))
}

func itoaAny(v any) string {
	if n, ok := v.(int); ok {
		return formatInt(n)
	}
	s, _ := v.(string)
	return s
}
