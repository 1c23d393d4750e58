// Package deploy holds the launch files of sharded irl runs (Slurm job
// arrays, Kubernetes Indexed Jobs); its tests check them without a cluster.
package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// shellcheck runs shellcheck on a script (shell "bash" or "sh"), failing
// the test on any finding; it skips with a reason where shellcheck is
// absent (CI installs Debian's).
func shellcheck(t *testing.T, path, shell string) {
	t.Helper()
	if out, err := exec.Command(shell, "-n", path).CombinedOutput(); err != nil {
		t.Errorf("%s -n %s: %v\n%s", shell, path, err, out)
	}
	sc, err := exec.LookPath("shellcheck")
	if err != nil {
		t.Skipf("shellcheck is not installed (apt-get install shellcheck): %s was checked with %s -n only", path, shell)
	}
	if out, err := exec.Command(sc, "-s", shell, path).CombinedOutput(); err != nil {
		t.Errorf("shellcheck %s: %v\n%s", path, err, out)
	}
}

func TestSlurmScripts(t *testing.T) {
	scripts, _ := filepath.Glob(filepath.Join("slurm", "*"))
	if len(scripts) < 3 {
		t.Fatalf("slurm/ holds %v: want shard.sbatch, merge.sbatch and submit.sh", scripts)
	}
	for _, s := range scripts {
		t.Run(filepath.Base(s), func(t *testing.T) {
			b, err := os.ReadFile(s)
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasSuffix(s, ".sbatch") && !strings.Contains(string(b), "\n#SBATCH --job-name=") {
				t.Errorf("%s has no #SBATCH --job-name line", s)
			}
			shellcheck(t, s, "bash")
		})
	}
	submit, _ := os.ReadFile(filepath.Join("slurm", "submit.sh"))
	for _, want := range []string{"--array=", "--dependency=\"afterok:", "shard.sbatch", "merge.sbatch"} {
		if !bytes.Contains(submit, []byte(want)) {
			t.Errorf("submit.sh does not use %s", want)
		}
	}
	shard, _ := os.ReadFile(filepath.Join("slurm", "shard.sbatch"))
	if !bytes.Contains(shard, []byte("{shard}")) {
		t.Error("shard.sbatch's --out has no {shard}: every task would write the same part")
	}
}

// keys are the fields a manifest may use at each path ("*" any key): a
// schema of the part of the Kubernetes API the files use, so a misspelt
// or misplaced field fails here rather than on the cluster.
var keys = map[string][]string{
	"":                                     {"apiVersion", "kind", "metadata", "data", "spec"},
	"metadata":                             {"name", "namespace", "labels", "annotations"},
	"data":                                 {"*"},
	"PersistentVolumeClaim.spec":           {"accessModes", "resources", "storageClassName"},
	"PersistentVolumeClaim.spec.resources": {"requests"},
	"PersistentVolumeClaim.spec.resources.requests": {"storage"},
	"Job.spec": {"completionMode", "completions", "parallelism", "backoffLimit", "backoffLimitPerIndex",
		"maxFailedIndexes", "activeDeadlineSeconds", "ttlSecondsAfterFinished", "template"},
	"Job.spec.template":      {"metadata", "spec"},
	"Job.spec.template.spec": {"restartPolicy", "containers", "volumes", "nodeSelector", "tolerations", "serviceAccountName"},
	"container":              {"name", "image", "command", "args", "env", "resources", "volumeMounts", "workingDir"},
	"container.env":          {"name", "value"},
	"container.resources":    {"requests", "limits"},
	"container.volumeMounts": {"name", "mountPath", "readOnly", "subPath"},
	"volume":                 {"name", "persistentVolumeClaim", "configMap"},
}

// checkKeys walks a document, refusing keys the schema lists no place for.
// A list's items take the path of its field, but containers and volumes,
// which have their own entries.
func checkKeys(kind, path string, v any) error {
	m, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	allowed, known := keys[kind+"."+path]
	if !known {
		allowed, known = keys[path]
	}
	for k, sub := range m {
		if known && !slices.Contains(allowed, "*") && !slices.Contains(allowed, k) {
			return fmt.Errorf("%s: unknown field %q in %s", kind, k, path)
		}
		next := strings.TrimPrefix(path+"."+k, ".")
		list, isList := sub.([]any)
		if !isList {
			if err := checkKeys(kind, next, sub); err != nil {
				return err
			}
			continue
		}
		switch k {
		case "containers":
			next = "container"
		case "volumes":
			next = "volume"
		}
		for _, e := range list {
			if err := checkKeys(kind, next, e); err != nil {
				return err
			}
		}
	}
	return nil
}

// readDocs parses every YAML document of a file.
func readDocs(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var docs []map[string]any
	dec := yaml.NewDecoder(f)
	for {
		var d map[string]any
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		docs = append(docs, d)
	}
	return docs
}

func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			l, _ := v.([]any)
			if k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func TestKubernetesManifests(t *testing.T) {
	byKind := map[string]map[string]any{}
	var jobs []map[string]any
	for _, file := range []string{"irl-shards.yaml", "irl-merge.yaml"} {
		for _, d := range readDocs(t, filepath.Join("kubernetes", file)) {
			kind, _ := d["kind"].(string)
			api, _ := d["apiVersion"].(string)
			want := map[string]string{"ConfigMap": "v1", "PersistentVolumeClaim": "v1", "Job": "batch/v1"}[kind]
			if want == "" || api != want {
				t.Fatalf("%s: kind %q apiVersion %q: want ConfigMap, PersistentVolumeClaim (v1) or Job (batch/v1)", file, kind, api)
			}
			if err := checkKeys(kind, "", d); err != nil {
				t.Errorf("%s: %v", file, err)
			}
			if kind == "Job" {
				jobs = append(jobs, d)
			} else {
				byKind[kind] = d
			}
		}
	}
	cm, pvc := byKind["ConfigMap"], byKind["PersistentVolumeClaim"]
	if cm == nil || pvc == nil || len(jobs) != 2 {
		t.Fatalf("want a ConfigMap, a PersistentVolumeClaim and two Jobs; have %d jobs", len(jobs))
	}
	if modes := get(pvc, "spec", "accessModes"); fmt.Sprint(modes) != "[ReadWriteMany]" {
		t.Errorf("the data volume is %v: every pod writes to it, so it must be ReadWriteMany", modes)
	}
	shards := jobs[0]
	if get(shards, "spec", "completionMode") != "Indexed" {
		t.Errorf("irl-shards is not an Indexed Job: its pods get no JOB_COMPLETION_INDEX")
	}
	completions := fmt.Sprint(get(shards, "spec", "completions"))
	env := get(shards, "spec", "template", "spec", "containers", 0, "env", 0)
	if get(env, "name") != "SHARDS" || fmt.Sprint(get(env, "value")) != completions {
		t.Errorf("SHARDS %v differs from completions %s: irl's --shards must be the Job's completions", env, completions)
	}
	for _, job := range jobs {
		name := get(job, "metadata", "name")
		spec := get(job, "spec", "template", "spec")
		if get(spec, "restartPolicy") != "Never" && get(spec, "restartPolicy") != "OnFailure" {
			t.Errorf("%v: a Job's restartPolicy must be Never or OnFailure", name)
		}
		vols := map[string]any{}
		for _, v := range get(spec, "volumes").([]any) {
			vols[get(v, "name").(string)] = v
		}
		if claim := get(vols["data"], "persistentVolumeClaim", "claimName"); claim != get(pvc, "metadata", "name") {
			t.Errorf("%v: data volume claims %v, not the PersistentVolumeClaim", name, claim)
		}
		if get(vols["config"], "configMap", "name") != get(cm, "metadata", "name") {
			t.Errorf("%v: config volume is not the ConfigMap", name)
		}
		c := get(spec, "containers", 0)
		for _, m := range get(c, "volumeMounts").([]any) {
			if vols[get(m, "name").(string)] == nil {
				t.Errorf("%v: mounts volume %v, which the pod does not have", name, get(m, "name"))
			}
		}
		cmd := get(c, "command").([]any)
		script := strings.TrimPrefix(fmt.Sprint(cmd[len(cmd)-1]), "/config/")
		if get(cm, "data", script) == nil {
			t.Errorf("%v runs /config/%s, which the ConfigMap does not hold", name, script)
		}
	}
	// The ConfigMap's scripts, as /bin/sh runs them.
	for _, name := range []string{"shard.sh", "merge.sh"} {
		p := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(p, []byte(fmt.Sprint(get(cm, "data", name))), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Run(name, func(t *testing.T) { shellcheck(t, p, "sh") })
	}
	if !strings.Contains(fmt.Sprint(get(cm, "data", "shard.sh")), "{shard}") {
		t.Error("shard.sh's --out has no {shard}: every pod would write the same part")
	}
}

// TestSchemaCatchesTypos: the key check refuses a misplaced field.
func TestSchemaCatchesTypos(t *testing.T) {
	var d map[string]any
	if err := yaml.Unmarshal([]byte("kind: Job\nspec:\n  completionmode: Indexed\n"), &d); err != nil {
		t.Fatal(err)
	}
	if err := checkKeys("Job", "", d); err == nil {
		t.Error("completionmode (lower case) passed")
	}
	if err := yaml.Unmarshal([]byte("kind: Job\nspec:\n  template:\n    spec:\n      containers:\n        - name: a\n          volumeMount: []\n"), &d); err != nil {
		t.Fatal(err)
	}
	if err := checkKeys("Job", "", d); err == nil {
		t.Error("volumeMount (singular) passed")
	}
}
