package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/gob"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/facegate/facegate/camera"
	"github.com/facegate/facegate/daemon"
	"github.com/facegate/facegate/learn"
	"github.com/facegate/facegate/store"
	"github.com/facegate/facegate/verify"
)

// runIn runs a subcommand in this process and maps its error to an exit
// status as run does: train, heads and calibrate are tested this way until
// main.go lists them.
func runIn(t *testing.T, newCmd func(stdout, stderr io.Writer) command, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := newCmd(&stdout, &stderr).Run(context.Background(), args)
	code := 0
	var ue usageError
	var re reportedError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.As(err, &re):
		code = exitFailed
	case errors.As(err, &ue):
		code = exitUsage
		fmt.Fprintf(&stderr, "facegate: %v\n", err)
	default:
		code = exitFailed
		fmt.Fprintf(&stderr, "facegate: %v\n", err)
	}
	return result{code, stdout.String(), stderr.String()}
}

func train(t *testing.T, args ...string) result {
	t.Helper()
	return runIn(t, func(o, e io.Writer) command { return &TrainCommand{stdout: o, stderr: e} }, args...)
}

func heads(t *testing.T, args ...string) result {
	t.Helper()
	return runIn(t, func(o, e io.Writer) command { return &HeadsCommand{stdout: o, stderr: e} }, args...)
}

func calibrate(t *testing.T, args ...string) result {
	t.Helper()
	return runIn(t, func(o, e io.Writer) command { return &CalibrateCommand{stdout: o, stderr: e} }, args...)
}

// lastJSON decodes the last line of a command's stdout.
func lastJSON(t *testing.T, r result, v any) {
	t.Helper()
	ls := lines(r.stdout)
	if len(ls) == 0 {
		t.Fatalf("no stdout; stderr: %s", r.stderr)
	}
	if err := json.Unmarshal([]byte(ls[len(ls)-1]), v); err != nil {
		t.Fatalf("last stdout line %q: %v", ls[len(ls)-1], err)
	}
}

// bundledEncoderID is the identity of the bundled encoder, as the commands
// see it.
func bundledEncoderID(t *testing.T) string {
	t.Helper()
	id, err := (&modelFlags{}).encoderID()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// syntheticGallery enrolls people with per templates each: 512-d unit
// vectors around a direction of their own, with a nuisance shared by no
// one in the last 64 components.
func syntheticGallery(t *testing.T, path string, people, per int, seed uint64) {
	t.Helper()
	ctx := context.Background()
	model := bundledEncoderID(t)
	db, err := store.Open(ctx, path, model)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rng := rand.New(rand.NewPCG(seed, 0))
	const dim, nuisance = 512, 64
	for p := range people {
		centre := make([]float64, dim)
		for k := range dim - nuisance {
			centre[k] = rng.NormFloat64()
		}
		var ts []store.Template
		for range per {
			v := make([]float32, dim)
			var ss float64
			for k := range v {
				x := centre[k]/math.Sqrt(dim-nuisance) + 0.7*rng.NormFloat64()/math.Sqrt(dim)
				if k >= dim-nuisance {
					x = rng.NormFloat64() / math.Sqrt(nuisance)
				}
				v[k] = float32(x)
				ss += x * x
			}
			for k := range v {
				v[k] /= float32(math.Sqrt(ss))
			}
			ts = append(ts, store.Template{Model: model, ModelName: "fr_feature.onnx", Vector: v})
		}
		id := fmt.Sprintf("p%03d", p)
		if err := db.Enroll(ctx, store.Person{ID: id, Name: "Person " + id, Active: true}, ts, false); err != nil {
			t.Fatal(err)
		}
	}
}

type headRow struct {
	Name      string   `json:"name"`
	Method    string   `json:"method"`
	Active    bool     `json:"active"`
	Threshold *float32 `json:"threshold"`
	Metrics   struct {
		Calibration *learn.Calibration `json:"calibration"`
		Validation  *learn.Metrics     `json:"validation"`
	} `json:"metrics"`
}

func listHeads(t *testing.T, db string) map[string]headRow {
	t.Helper()
	r := heads(t, "--db", db, "--json")
	if r.code != 0 {
		t.Fatalf("heads: exit %d: %s", r.code, r.stderr)
	}
	out := map[string]headRow{}
	for _, l := range lines(r.stdout) {
		var h headRow
		if err := json.Unmarshal([]byte(l), &h); err != nil {
			t.Fatalf("heads --json line %q: %v", l, err)
		}
		out[h.Name] = h
	}
	return out
}

func TestTrainHeadsCalibrate(t *testing.T) {
	db := filepath.Join(t.TempDir(), "g.db")
	syntheticGallery(t, db, 40, 4, 1)
	for _, m := range []string{"triplet", "logistic", "chi2"} {
		r := train(t, "--db", db, "--method", m, "--epochs", "4", "--name", m+"1")
		if r.code != 0 {
			t.Fatalf("train %s: exit %d: %s", m, r.code, r.stderr)
		}
		for _, want := range []string{"epoch 1/4", "epoch 4/4", "loss", "val accuracy", "held-out people", "stored head"} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("train %s: stderr does not say %q:\n%s", m, want, r.stderr)
			}
		}
		var out struct {
			Name       string         `json:"name"`
			Method     string         `json:"method"`
			Model      string         `json:"model"`
			ValPeople  int            `json:"val_people"`
			Validation *learn.Metrics `json:"validation"`
			Cosine     *learn.Metrics `json:"cosine_validation"`
		}
		lastJSON(t, r, &out)
		if out.Name != m+"1" || out.Method != m || out.Model != bundledEncoderID(t) || out.ValPeople != 8 || out.Validation == nil || out.Cosine == nil {
			t.Errorf("train %s: JSON %+v", m, out)
		}
		t.Logf("%s: held-out accuracy %.3f (cosine %.3f), EER %.3f (cosine %.3f)", m, out.Validation.Accuracy, out.Cosine.Accuracy, out.Validation.EER, out.Cosine.EER)
	}
	if r := train(t, "--db", db, "--method", "triplet", "--name", "triplet1"); r.code != 1 || !strings.Contains(r.stderr, `"triplet1"`) {
		t.Errorf("train over an existing name: exit %d: %s", r.code, r.stderr)
	}

	hs := listHeads(t, db)
	if len(hs) != 3 || hs["triplet1"].Active || hs["chi2"+"1"].Method != "chi2" || hs["logistic1"].Threshold == nil {
		t.Fatalf("heads after training: %+v", hs)
	}
	r := heads(t, "--db", db)
	if r.code != 0 || !strings.Contains(r.stdout, "triplet1") || !strings.Contains(r.stdout, "VAL ACCURACY") {
		t.Errorf("heads table: exit %d:\n%s%s", r.code, r.stdout, r.stderr)
	}

	// Plain cosine, with no head active: the "cosine" head is made and
	// becomes active.
	r = calibrate(t, "--db", db, "--far", "1e-3")
	if r.code != 0 {
		t.Fatalf("calibrate: exit %d: %s", r.code, r.stderr)
	}
	var cal calibrateJSON
	lastJSON(t, r, &cal)
	if cal.Head != "cosine" || !cal.Active || cal.Impostors != 160*159/2-40*6 || cal.Genuine != 240 || !cal.Resolved || cal.FAR > 1e-3 {
		t.Errorf("calibrate cosine: %+v", cal)
	}
	// The door's threshold is for a stranger compared with all 40 people:
	// 1e-3/40 per comparison, which 12,480 impostor pairs cannot resolve.
	if d := cal.Door; d.People != 40 || d.StrangerFAR != 1e-3 || d.TargetFAR != 1e-3/40 || d.Resolved || !(d.Threshold > cal.Threshold) ||
		!strings.Contains(r.stderr, "door threshold is unresolved") || strings.Contains(r.stderr, "built-in threshold 0.55") != (d.Threshold < 0.55) {
		t.Errorf("calibrate cosine, door: %+v\n%s", d, r.stderr)
	}
	hs = listHeads(t, db)
	if c := hs["cosine"]; !c.Active || c.Threshold == nil || *c.Threshold != cal.Threshold || c.Metrics.Calibration == nil {
		t.Errorf("cosine head after calibrate: %+v", c)
	}

	// A trained head can be activated only once calibrated for the door;
	// calibrating it leaves it inactive, then it is activated.
	if r := heads(t, "--db", db, "--activate", "triplet1"); r.code != 1 || !strings.Contains(r.stderr, "no door threshold") || listHeads(t, db)["triplet1"].Active {
		t.Fatalf("activate before calibrating: exit %d: %s", r.code, r.stderr)
	}
	r = calibrate(t, "--db", db, "--far", "1e-2", "--head", "triplet1")
	if r.code != 0 || !strings.Contains(r.stderr, "optimistic") || !strings.Contains(r.stderr, `"cosine" is active, not "triplet1"`) {
		t.Fatalf("calibrate triplet1: exit %d: %s", r.code, r.stderr)
	}
	lastJSON(t, r, &cal)
	if r := heads(t, "--db", db, "--activate", "triplet1"); r.code != 0 || !strings.Contains(r.stderr, "now active") {
		t.Fatalf("activate: exit %d: %s", r.code, r.stderr)
	}
	hs = listHeads(t, db)
	if h := hs["triplet1"]; !h.Active || *h.Threshold != cal.Threshold || h.Metrics.Calibration.TargetFAR != 1e-2 || h.Metrics.Validation == nil || hs["cosine"].Active {
		t.Errorf("after calibrating the active triplet head: %+v; cosine %+v", h, hs["cosine"])
	}
	// --people sizes the door threshold for a headcount not yet enrolled.
	r = calibrate(t, "--db", db, "--far", "1e-2", "--head", "triplet1", "--people", "4")
	var four calibrateJSON
	lastJSON(t, r, &four)
	if r.code != 0 || four.Door.People != 4 || four.Door.TargetFAR != 1e-2/4 || four.Threshold != cal.Threshold || !(four.Door.Threshold <= cal.Door.Threshold) {
		t.Errorf("calibrate --people 4: exit %d, %+v; with all 40: %+v", r.code, four, cal)
	}
	// Calibrating cosine now leaves the triplet head active.
	if r := calibrate(t, "--db", db, "--far", "1e-3"); r.code != 0 || !strings.Contains(r.stderr, `"triplet1" is active`) {
		t.Errorf("calibrate cosine with another head active: exit %d: %s", r.code, r.stderr)
	}
	if r := heads(t, "--db", db, "--deactivate"); r.code != 0 || !strings.Contains(r.stderr, "no longer active") {
		t.Errorf("deactivate: exit %d: %s", r.code, r.stderr)
	}
	for name, h := range listHeads(t, db) {
		if h.Active {
			t.Errorf("%s still active", name)
		}
	}
	if r := heads(t, "--db", db, "--remove", "logistic1"); r.code != 0 || len(listHeads(t, db)) != 3 {
		t.Errorf("remove: exit %d: %s", r.code, r.stderr)
	}
}

func TestLearnCommandsBadInput(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "g.db")
	syntheticGallery(t, db, 6, 3, 2)
	few := filepath.Join(dir, "few.db")
	syntheticGallery(t, few, 1, 3, 3)
	for _, c := range []struct {
		name string
		run  func(*testing.T, ...string) result
		args []string
		code int
		want string
	}{
		{"train without method", train, []string{"--db", db}, 2, "--method is required"},
		{"train unknown method", train, []string{"--db", db, "--method", "svm"}, 2, `"svm"`},
		{"train cosine", train, []string{"--db", db, "--method", "cosine"}, 2, `"cosine"`},
		{"train bad mining", train, []string{"--db", db, "--method", "triplet", "--mining", "easy"}, 2, "--mining"},
		{"train holdout 1", train, []string{"--db", db, "--method", "chi2", "--holdout", "1"}, 2, "--holdout"},
		{"train negative alpha", train, []string{"--db", db, "--method", "triplet", "--alpha", "-1"}, 2, "margin"},
		{"train without db", train, []string{"--method", "chi2"}, 2, "--db"},
		{"train one person", train, []string{"--db", few, "--method", "chi2"}, 1, "at least two people"},
		{"train from a missing folder", train, []string{"--db", db, "--method", "chi2", "--from", filepath.Join(dir, "nope")}, 1, "not a folder"},
		{"train dim too large", train, []string{"--db", db, "--method", "triplet", "--dim", "600", "--epochs", "1"}, 1, "dimension 600"},
		{"heads two actions", heads, []string{"--db", db, "--activate", "x", "--deactivate"}, 2, "one of"},
		{"heads activate missing", heads, []string{"--db", db, "--activate", "nope"}, 1, `"nope"`},
		{"calibrate far 0", calibrate, []string{"--db", db, "--far", "0"}, 2, "--far"},
		{"calibrate far 1", calibrate, []string{"--db", db, "--far", "1"}, 2, "--far"},
		{"calibrate negative people", calibrate, []string{"--db", db, "--people", "-3"}, 2, "--people -3"},
		{"calibrate missing head", calibrate, []string{"--db", db, "--head", "nope"}, 1, `"nope"`},
		{"calibrate one person", calibrate, []string{"--db", few}, 1, "only one person"},
		{"calibrate empty db", calibrate, []string{"--db", filepath.Join(dir, "empty.db")}, 1, "no templates"},
	} {
		r := c.run(t, c.args...)
		if r.code != c.code || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%s: exit %d, want %d saying %q; stderr:\n%s", c.name, r.code, c.code, c.want, r.stderr)
		}
		if c.code != 0 && len(lines(r.stderr)) == 0 {
			t.Errorf("%s: no message", c.name)
		}
	}
	for _, cmd := range []func(*testing.T, ...string) result{train, heads, calibrate} {
		if r := cmd(t, "-h"); r.code != 0 || !strings.Contains(r.stderr, "Examples:") {
			t.Errorf("-h: exit %d: %s", r.code, r.stderr)
		}
	}
}

// TestTrainFromFolderAndEvalWithHead trains on a folder of LFW photos,
// embedded by train itself, then checks that eval --head with the
// calibrated cosine head gives exactly what plain eval gives.
func TestTrainFromFolderAndEvalWithHead(t *testing.T) {
	dir := t.TempDir()
	photos := filepath.Join(dir, "photos")
	people := map[string]int{"George_W_Bush": 4, "Colin_Powell": 4, "Tony_Blair": 4, "Donald_Rumsfeld": 3}
	for name, n := range people {
		if err := os.MkdirAll(filepath.Join(photos, name), 0o755); err != nil {
			t.Fatal(err)
		}
		for i := 1; i <= n; i++ {
			b, err := os.ReadFile(lfw(fmt.Sprintf("%s_%04d", name, i)))
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(photos, name, fmt.Sprintf("%d.jpg", i)), b)
		}
	}
	writeFile(t, filepath.Join(photos, "Tony_Blair", "broken.jpg"), []byte("not a jpeg"))
	db := filepath.Join(dir, "g.db")
	models := []string{"--models", filepath.Join(libDir, "models"), "--ort-lib", filepath.Join(libDir, "libonnxruntime.so.1")}
	r := train(t, append(models, "--db", db, "--method", "logistic", "--from", photos, "--face", "central", "--epochs", "2", "--holdout", "0", "--name", "lfw-logistic")...)
	if r.code != 0 {
		t.Fatalf("train --from: exit %d: %s", r.code, r.stderr)
	}
	for _, want := range []string{"embedding 16 photos", "skipped", "broken.jpg", "4 people, 15 embeddings", "no validation"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("train --from: stderr does not say %q:\n%s", want, r.stderr)
		}
	}
	var out struct {
		Source          string `json:"source"`
		TrainEmbeddings int    `json:"train_embeddings"`
	}
	lastJSON(t, r, &out)
	if out.Source != "folder "+photos || out.TrainEmbeddings != 15 {
		t.Errorf("train --from JSON: %+v", out)
	}

	// A cosine head in the same database, through calibrate (it needs
	// templates: enroll two of the people).
	for _, p := range []struct{ id, a, b string }{{"gwb", "George_W_Bush_0001", "George_W_Bush_0002"}, {"cp", "Colin_Powell_0001", "Colin_Powell_0002"}} {
		if r := facegate(t, "enroll", "--db", db, "--id", p.id, "--name", p.id, lfw(p.a), lfw(p.b)); r.code != 0 {
			t.Fatalf("enroll %s: %s", p.id, r.stderr)
		}
	}
	if r := calibrate(t, "--db", db, "--far", "1e-3"); r.code != 0 || !strings.Contains(r.stderr, "keeps the built-in threshold 0.55") {
		t.Fatalf("calibrate: exit %d: %s", r.code, r.stderr)
	}

	pairs := filepath.Join(dir, "pairs.txt")
	var b strings.Builder
	b.WriteString("10\n")
	for i := range 10 {
		name := []string{"George_W_Bush", "Colin_Powell", "Tony_Blair", "Donald_Rumsfeld", "Ariel_Sharon"}[i%5]
		fmt.Fprintf(&b, "%s\t%d\t%d\n", name, 1+i/5, 3+i/5)
	}
	for i := range 10 {
		fmt.Fprintf(&b, "George_W_Bush\t%d\tColin_Powell\t%d\n", 5+i, 5+i)
	}
	writeFile(t, pairs, []byte(b.String()))
	evalJSONOf := func(args ...string) evalJSON {
		t.Helper()
		r := facegate(t, append([]string{"eval", "--pairs", pairs, "--images", lfwDir, "--workers", "1"}, args...)...)
		if r.code != 0 {
			t.Fatalf("eval %v: exit %d: %s", args, r.code, r.stderr)
		}
		var e evalJSON
		lastJSON(t, r, &e)
		return e
	}
	plain := evalJSONOf()
	withCosine := evalJSONOf("--db", db, "--head", "cosine")
	if withCosine.Head != "cosine" || withCosine.Method != "cosine" || withCosine.Accuracy != plain.Accuracy || withCosine.EER != plain.EER || withCosine.Threshold != plain.Threshold {
		t.Errorf("eval --head cosine %+v differs from plain eval %+v", withCosine, plain)
	}
	withHead := evalJSONOf("--db", db, "--head", "lfw-logistic")
	if withHead.Method != "logistic" || withHead.Pairs != 20 || !(withHead.Threshold > 0 && withHead.Threshold < 1) {
		t.Errorf("eval --head lfw-logistic: %+v", withHead)
	}
	t.Logf("20 pairs: cosine accuracy %.2f, EER %.2f; a logistic head trained on 15 photos: %.2f, %.2f", plain.Accuracy, plain.EER, withHead.Accuracy, withHead.EER)
	if active := evalJSONOf("--db", db, "--head", "active"); active.Head != "cosine" || active.Accuracy != plain.Accuracy {
		t.Errorf("eval --head active, with the cosine head active: %+v", active)
	}

	// identify scores as the door does: with the active head, once it is
	// calibrated for the door, at its door threshold.
	identify := func() identifyJSON {
		t.Helper()
		r := facegate(t, append(append([]string{"identify"}, models...), "--db", db, "--json", lfw("George_W_Bush_0003"))...)
		var out identifyJSON
		if err := json.Unmarshal([]byte(r.stdout), &out); r.code != 0 || err != nil {
			t.Fatalf("identify: exit %d, %v: %s%s", r.code, err, r.stdout, r.stderr)
		}
		t.Logf("identify: %s", r.stderr)
		return out
	}
	cosineID := identify()
	if r := heads(t, "--db", db, "--activate", "lfw-logistic"); r.code != 1 || !strings.Contains(r.stderr, "calibrate") {
		t.Fatalf("activate an uncalibrated head: exit %d: %s", r.code, r.stderr)
	}
	// Two people with two photos each make 4 impostor pairs: a door
	// threshold of a learned head cannot be resolved below a stranger
	// rate of 2/4 per door, so the door refuses it at 1e-2.
	r = calibrate(t, "--db", db, "--far", "1e-2", "--head", "lfw-logistic")
	if r.code != 0 || !strings.Contains(r.stderr, `will not use head "lfw-logistic"`) {
		t.Fatalf("calibrate lfw-logistic at 1e-2: exit %d: %s", r.code, r.stderr)
	}
	if r := heads(t, "--db", db, "--activate", "lfw-logistic"); r.code != 1 || !strings.Contains(r.stderr, "unresolved") {
		t.Fatalf("activate with an unresolved door threshold: exit %d: %s", r.code, r.stderr)
	}
	r = calibrate(t, "--db", db, "--far", "0.5", "--head", "lfw-logistic")
	if r.code != 0 {
		t.Fatalf("calibrate lfw-logistic: exit %d: %s", r.code, r.stderr)
	}
	var cal calibrateJSON
	lastJSON(t, r, &cal)
	if r := heads(t, "--db", db, "--activate", "lfw-logistic"); r.code != 0 {
		t.Fatalf("activate lfw-logistic: exit %d: %s", r.code, r.stderr)
	}
	headID := identify()
	if cosineID.Head != "cosine" || cosineID.Threshold != verify.IdentifyThreshold || headID.Head != "lfw-logistic" || headID.Threshold != cal.Door.Threshold || headID.Score == cosineID.Score ||
		!(headID.Score > 0 && headID.Score <= 1) || headID.Person == nil || headID.Person.ID != "gwb" || !headID.Known {
		t.Errorf("identify with the cosine head %+v, then the logistic head at door threshold %v: %+v", cosineID, cal.Door.Threshold, headID)
	}
	t.Logf("George_W_Bush_0003: cosine head %.3f at %.3f, logistic head ŷ %.3f at %.3f", cosineID.Score, cosineID.Threshold, headID.Score, headID.Threshold)

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--head", "cosine"}, "--db"},
		{[]string{"--db", db, "--head", "nope"}, `"nope"`},
		{[]string{"--db", filepath.Join(dir, "missing.db"), "--head", "x"}, "no such database"},
	} {
		r := facegate(t, append([]string{"eval", "--pairs", pairs, "--images", lfwDir}, c.args...)...)
		if r.code == 0 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("eval %v: exit %d: %s", c.args, r.code, r.stderr)
		}
	}
}

// lfwCache is the embeddings of LFW View 1's training people and of the
// images pairsDevTest.txt names, as eval makes them (central face). It is
// written once by TestEmbedLFWCache to a file outside the repository.
type lfwCache struct {
	Model   string
	Vectors map[string][]float32 // "NAME/NAME_0001.jpg" → unit vector; nil when no face was found
}

// lfwCachePath is where the cache lives: FACEGATE_LFW_CACHE, or "" to skip.
func lfwCachePath() string { return os.Getenv("FACEGATE_LFW_CACHE") }

// lfwPeople reads an LFW people file (a count, then NAME N per line) into
// image paths relative to the images folder, grouped by person.
func lfwPeople(t testing.TB, path string) (names []string, images map[string][]string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	images = map[string][]string{}
	sc := bufio.NewScanner(f)
	sc.Scan() // the count
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) != 2 {
			continue
		}
		n, err := strconv.Atoi(fs[1])
		if err != nil {
			t.Fatalf("%s: %q", path, sc.Text())
		}
		names = append(names, fs[0])
		for i := 1; i <= n; i++ {
			images[fs[0]] = append(images[fs[0]], fmt.Sprintf("%s/%s_%04d.jpg", fs[0], fs[0], i))
		}
	}
	return names, images
}

// TestEmbedLFWCache embeds the 9,525 images of peopleDevTrain.txt and the
// 1,549 of pairsDevTest.txt once (about 12 minutes on 2 cores) and writes
// them to $FACEGATE_LFW_CACHE, for TestLFWHeads:
//
//	FACEGATE_LFW_CACHE=/tmp/facegate-lfw.gob go test ./cmd/facegate -run EmbedLFWCache -v -timeout 60m
func TestEmbedLFWCache(t *testing.T) {
	path := lfwCachePath()
	if path == "" {
		t.Skip("set FACEGATE_LFW_CACHE=/tmp/FILE to embed LFW View 1 into it (minutes)")
	}
	if _, err := os.Stat(path); err == nil {
		t.Skipf("%s exists; remove it to embed again", path)
	}
	view1 := filepath.Join(sharedDir, "lfw-view1")
	names, byPerson := lfwPeople(t, filepath.Join(view1, "peopleDevTrain.txt"))
	var images []string
	for _, n := range names {
		images = append(images, byPerson[n]...)
	}
	pairs, err := verify.ReadPairsFile(filepath.Join(view1, "pairsDevTest.txt"))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, im := range images {
		seen[im] = true
	}
	for _, p := range pairs {
		for _, im := range []string{p.A, p.B} {
			if !seen[im] {
				seen[im] = true
				images = append(images, im)
			}
		}
	}
	mf := modelFlags{dir: filepath.Join(libDir, "models"), ortLib: filepath.Join(libDir, "libonnxruntime.so.1")}
	def := defaultEncoderFlags()
	mf.encoderMean, mf.encoderStd, mf.encoderColour = def.encoderMean, def.encoderStd, def.encoderColour
	start := time.Now()
	var sink strings.Builder
	embs, model, err := (&EvalCommand{stdout: &sink, stderr: &sink}).embedAll(context.Background(), &mf, 2, lfwDir, images, verify.Central, camera.DefaultMaxPixels)
	if err != nil {
		t.Fatal(err)
	}
	c := lfwCache{Model: model, Vectors: make(map[string][]float32, len(embs))}
	noFace := 0
	for _, im := range images {
		c.Vectors[im] = embs[im].Vector
		if embs[im].Vector == nil {
			noFace++
		}
	}
	t.Logf("%d images embedded in %v, %d without a face", len(images), time.Since(start).Round(time.Second), noFace)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := gob.NewEncoder(f).Encode(c); err != nil {
		f.Close()
		os.Remove(path)
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// loadLFWCache reads the cache TestEmbedLFWCache wrote, or skips, and
// checks that its embeddings are of the bundled encoder, returned.
func loadLFWCache(t *testing.T) (lfwCache, string) {
	t.Helper()
	path := lfwCachePath()
	if path == "" {
		t.Skip("set FACEGATE_LFW_CACHE to the file TestEmbedLFWCache wrote")
	}
	f, err := os.Open(path)
	if err != nil {
		t.Skipf("%v: run TestEmbedLFWCache first", err)
	}
	defer f.Close()
	var c lfwCache
	if err := gob.NewDecoder(f).Decode(&c); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	model := bundledEncoderID(t)
	if c.Model != model {
		t.Fatalf("the cache holds embeddings of encoder %s, this facegate uses %s", c.Model, model)
	}
	return c, model
}

// lfwTrainSet is the embeddings of peopleDevTrain.txt's people, by person;
// images where no face was found are left out.
func lfwTrainSet(t *testing.T, c lfwCache) learn.Set {
	t.Helper()
	names, byPerson := lfwPeople(t, filepath.Join(sharedDir, "lfw-view1", "peopleDevTrain.txt"))
	var s learn.Set
	for _, n := range names {
		for _, im := range byPerson[n] {
			v, ok := c.Vectors[im]
			if !ok {
				t.Fatalf("%s is not in the cache", im)
			}
			if v != nil {
				s.Add(n, v)
			}
		}
	}
	return s
}

// enrollLFWSet enrolls every person of set, with all their embeddings,
// into a new database at path.
func enrollLFWSet(t *testing.T, path, model string, set learn.Set) {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, path, model)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	byPerson := map[string][]store.Template{}
	var order []string
	for i, l := range set.Labels {
		if byPerson[l] == nil {
			order = append(order, l)
		}
		byPerson[l] = append(byPerson[l], store.Template{Model: model, ModelName: "fr_feature.onnx", Vector: set.Vectors[i]})
	}
	for _, p := range order {
		if err := db.Enroll(ctx, store.Person{ID: p, Name: strings.ReplaceAll(p, "_", " "), Active: true}, byPerson[p], false); err != nil {
			t.Fatal(err)
		}
	}
}

// TestLFWHeads is the LFW comparison. It enrolls the people of
// peopleDevTrain.txt (their embeddings from the cache TestEmbedLFWCache
// wrote), trains a head of each method on them with facegate train, and
// scores pairsDevTest.txt (other people) with plain cosine and with each
// head, under the LFW protocol:
//
//	FACEGATE_LFW_CACHE=/tmp/facegate-lfw.gob go test ./cmd/facegate -run LFWHeads -v -timeout 30m
//
// FACEGATE_LFW_DB=FILE keeps the database (it must not exist), for
// facegate eval --db FILE --head NAME to check a head on the photos
// themselves.
func TestLFWHeads(t *testing.T) {
	c, model := loadLFWCache(t)
	ctx := context.Background()
	dbPath := os.Getenv("FACEGATE_LFW_DB")
	if dbPath == "" {
		dbPath = filepath.Join(t.TempDir(), "lfw.db")
	} else if _, err := os.Stat(dbPath); err == nil {
		t.Fatalf("%s exists: remove it or name another", dbPath)
	}
	set := lfwTrainSet(t, c)
	enrollLFWSet(t, dbPath, model, set)
	t.Logf("enrolled %d peopleDevTrain people, %d templates", len(set.People()), set.Len())

	type row struct {
		label, name string
		args        []string
	}
	rows := []row{{label: "plain cosine"}}
	for _, m := range []string{"triplet", "logistic", "chi2"} {
		rows = append(rows,
			row{m + ", defaults (20% of people held out, best epoch kept)", "lfw-" + m, []string{"--method", m}},
			row{m + ", all people, last epoch", "lfw-" + m + "-all", []string{"--method", m, "--holdout", "0"}})
	}
	rows = append(rows,
		row{"triplet, α 0.5, hardest, batch 256, all people", "lfw-triplet-hard", []string{"--method", "triplet", "--holdout", "0", "--alpha", "0.5", "--mining", "hardest", "--batch", "256"}})
	heads := map[string]learn.Head{}
	for _, r := range rows[1:] {
		start := time.Now()
		res := train(t, append([]string{"--db", dbPath, "--name", r.name}, r.args...)...)
		if res.code != 0 {
			t.Fatalf("train %v: exit %d: %s", r.args, res.code, res.stderr)
		}
		t.Logf("facegate train %s (%.0f s):\n%s", strings.Join(r.args, " "), time.Since(start).Seconds(), res.stderr)
	}
	db, err := store.Open(ctx, dbPath, model)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, r := range rows[1:] {
		stored, err := db.Head(ctx, r.name)
		if err != nil {
			t.Fatal(err)
		}
		if heads[r.name], err = learn.Decode(stored.Blob); err != nil {
			t.Fatal(err)
		}
	}

	pairs, err := verify.ReadPairsFile(filepath.Join(sharedDir, "lfw-view1", "pairsDevTest.txt"))
	if err != nil {
		t.Fatal(err)
	}
	var table strings.Builder
	table.WriteString("| scoring | accuracy (10-fold) | EER | TAR @ FAR 1e-3 | TAR @ FAR 1e-2 |\n| --- | --- | --- | --- | --- |\n")
	for _, r := range rows {
		h := heads[r.name]
		scores := make([]verify.Score, len(pairs))
		for i, p := range pairs {
			a, b := c.Vectors[p.A], c.Vectors[p.B]
			scores[i] = verify.Score{Same: p.Same, Fold: p.Fold, Missing: a == nil || b == nil}
			switch {
			case scores[i].Missing:
			case h == nil:
				scores[i].Similarity = float64(verify.Dot(a, b))
			default:
				scores[i].Similarity = float64(h.Score(a, b))
			}
		}
		rep, err := verify.Evaluate(scores)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&table, "| %s | %.2f %% ± %.2f | %.2f %% | %.1f %% | %.1f %% |\n", r.label, 100*rep.Accuracy, 100*rep.AccuracyStd, 100*rep.EER, 100*rep.TARAtFAR1e3, 100*rep.TARAtFAR1e2)
	}
	t.Logf("LFW View 1, pairsDevTest.txt (1,000 pairs of people disjoint from the training people):\n%s", table.String())

	// pairsDevTest has 500 impostor pairs: TAR at FAR 1e-3 is TAR at no
	// false accept. Every pair of its 1,549 images resolves far more.
	var test learn.Set
	seen := map[string]bool{}
	for _, p := range pairs {
		for _, im := range []string{p.A, p.B} {
			if !seen[im] && c.Vectors[im] != nil {
				seen[im] = true
				test.Add(filepath.Dir(im), c.Vectors[im])
			}
		}
	}
	table.Reset()
	var genuine, impostor int
	for _, r := range rows {
		h := heads[r.name]
		if h == nil {
			h = learn.NewCosine(verify.EmbeddingDim, verify.DefaultThreshold)
		}
		g, i, err := learn.PairScores(h, test, 0, 1)
		if err != nil {
			t.Fatal(err)
		}
		genuine, impostor = len(g), len(i)
		scores := make([]verify.Score, 0, len(g)+len(i))
		for _, x := range g {
			scores = append(scores, verify.Score{Similarity: float64(x), Same: true})
		}
		for _, x := range i {
			scores = append(scores, verify.Score{Similarity: float64(x)})
		}
		fmt.Fprintf(&table, "| %s | %.2f %% | %.2f %% | %.2f %% | %.2f %% |\n", r.label, 100*verify.EER(scores),
			100*verify.TARAtFAR(scores, 1e-2), 100*verify.TARAtFAR(scores, 1e-3), 100*verify.TARAtFAR(scores, 1e-4))
	}
	t.Logf("every pair of pairsDevTest's %d images (%d genuine, %d impostor pairs):\n| scoring | EER | TAR @ FAR 1e-2 | TAR @ FAR 1e-3 | TAR @ FAR 1e-4 |\n| --- | --- | --- | --- | --- |\n%s",
		test.Len(), genuine, impostor, table.String())
}

// TestLFWHeadsAtTheDoor measures 1:N identification, as the door and
// facegate identify do it, with each head: heads are trained and
// calibrated for the door (--far 1e-3, a stranger's chance of passing as
// anyone) on peopleDevTrain.txt's people, as a site would on its own;
// then LFW View 1's test people are enrolled one-shot (first photo of each
// of the 496 with two or more) into another database holding copies of
// the heads, and each head in turn is made active and every other photo
// is searched through daemon.LoadRoster: 1,997 genuine probes, and 1,215
// strangers (the people with one photo, never enrolled). It embeds the
// test images missing from the cache (minutes):
//
//	FACEGATE_LFW_CACHE=/tmp/facegate-lfw.gob go test ./cmd/facegate -run LFWHeadsAtTheDoor -v -timeout 60m
func TestLFWHeadsAtTheDoor(t *testing.T) {
	c, model := loadLFWCache(t)
	ctx := context.Background()
	dir := t.TempDir()
	trainDB := filepath.Join(dir, "train.db")
	enrollLFWSet(t, trainDB, model, lfwTrainSet(t, c))
	names := []string{"cosine"}
	for _, m := range []string{"triplet", "logistic", "chi2"} {
		start := time.Now()
		if r := train(t, "--db", trainDB, "--method", m, "--name", m); r.code != 0 {
			t.Fatalf("train %s: exit %d: %s", m, r.code, r.stderr)
		}
		t.Logf("train %s: %.0f s", m, time.Since(start).Seconds())
		names = append(names, m)
	}

	// The test people, embedded as eval does (central face).
	testPeople, testImages := lfwPeople(t, filepath.Join(sharedDir, "lfw-view1", "peopleDevTest.txt"))
	var missing []string
	for _, n := range testPeople {
		for _, im := range testImages[n] {
			if _, ok := c.Vectors[im]; !ok {
				missing = append(missing, im)
			}
		}
	}
	if len(missing) > 0 {
		mf := modelFlags{dir: filepath.Join(libDir, "models"), ortLib: filepath.Join(libDir, "libonnxruntime.so.1")}
		def := defaultEncoderFlags()
		mf.encoderMean, mf.encoderStd, mf.encoderColour = def.encoderMean, def.encoderStd, def.encoderColour
		start := time.Now()
		var sink strings.Builder
		embs, _, err := (&EvalCommand{stdout: &sink, stderr: &sink}).embedAll(ctx, &mf, 2, lfwDir, missing, verify.Central, camera.DefaultMaxPixels)
		if err != nil {
			t.Fatal(err)
		}
		for _, im := range missing {
			c.Vectors[im] = embs[im].Vector
		}
		t.Logf("embedded %d test images missing from the cache in %v", len(missing), time.Since(start).Round(time.Second))
	}

	testDB := filepath.Join(dir, "door.db")
	db, err := store.Open(ctx, testDB, model)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var probes []lfwProbe
	enrolled, strangers, noFace := 0, 0, 0
	for _, n := range testPeople {
		ims := testImages[n]
		if len(ims) == 1 {
			if v := c.Vectors[ims[0]]; v != nil {
				probes = append(probes, lfwProbe{"", v})
				strangers++
			} else {
				noFace++
			}
			continue
		}
		first := c.Vectors[ims[0]]
		if first == nil {
			noFace += len(ims)
			continue
		}
		if err := db.Enroll(ctx, store.Person{ID: n, Name: n, Active: true}, []store.Template{{Model: model, ModelName: "fr_feature.onnx", Vector: first}}, false); err != nil {
			t.Fatal(err)
		}
		enrolled++
		for _, im := range ims[1:] {
			if v := c.Vectors[im]; v != nil {
				probes = append(probes, lfwProbe{n, v})
			} else {
				noFace++
			}
		}
	}
	t.Logf("%d test people enrolled one-shot; %d genuine probes, %d strangers; %d images without a face", enrolled, len(probes)-strangers, strangers, noFace)
	for _, far := range []string{"1e-2", "1e-3"} {
		doorTable(t, db, trainDB, model, names, far, enrolled, probes, strangers)
	}
}

// lfwProbe is a face searched at the door: of an enrolled person, or of
// a stranger (person "").
type lfwProbe struct {
	person string
	vector []float32
}

// doorTable calibrates each head in trainDB for a door of `enrolled`
// people at stranger rate far, copies them into the door's db, and
// searches every probe with each active in turn.
func doorTable(t *testing.T, db *store.DB, trainDB, model string, names []string, far string, enrolled int, probes []lfwProbe, strangers int) {
	ctx := context.Background()
	for _, n := range names {
		args := []string{"--db", trainDB, "--far", far, "--people", strconv.Itoa(enrolled)}
		if n != "cosine" {
			args = append(args, "--head", n)
		}
		start := time.Now()
		r := calibrate(t, args...)
		if r.code != 0 {
			t.Fatalf("calibrate %s: exit %d: %s", n, r.code, r.stderr)
		}
		t.Logf("calibrate %s (%.0f s):\n%s", n, time.Since(start).Seconds(), r.stderr)
	}
	src, err := store.Open(ctx, trainDB, model)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := src.Heads(ctx, model)
	src.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range stored {
		h.Active = false
		if err := db.SaveHead(ctx, h, true); err != nil {
			t.Fatal(err)
		}
	}
	const margin = 0.05
	var table strings.Builder
	table.WriteString("| scoring | door threshold | rank-1 | enrolled let in | let in as someone else | strangers let in | let in above every stranger's score |\n| --- | --- | --- | --- | --- | --- | --- |\n")
	for _, n := range append([]string{""}, names...) {
		label := "plain cosine, built-in threshold"
		if n == "" {
			if _, err := db.DeactivateHeads(ctx, model); err != nil {
				t.Fatal(err)
			}
		} else {
			label = n + " head"
			if err := db.ActivateHead(ctx, n); err != nil {
				t.Fatal(err)
			}
		}
		roster, err := daemon.LoadRoster(ctx, db, model, verify.EmbeddingDim)
		if err != nil {
			t.Fatal(err)
		}
		if roster.Scoring.Head != n {
			t.Fatalf("%s: the roster scores with %q (warnings %q)", label, roster.Scoring.Head, roster.Scoring.Warnings)
		}
		bar := roster.Scoring.ThresholdOr(verify.IdentifyThreshold)
		buf := make([]float32, roster.QueryLen())
		var rank1, in, wrong, strangerIn, genuine int
		best := float32(math.Inf(-1)) // the highest score a stranger reached
		type scored struct {
			score float32
			right bool
		}
		var genuineScores []scored
		for _, p := range probes {
			m, err := roster.Search(verify.Embedding{Model: model, Vector: p.vector}, buf)
			if err != nil {
				t.Fatal(err)
			}
			id, _ := roster.Gallery.Person(m.Person)
			known := m.Score >= bar && m.Margin() >= margin
			if p.person == "" {
				best = max(best, m.Score)
				if known {
					strangerIn++
				}
				continue
			}
			genuine++
			genuineScores = append(genuineScores, scored{m.Score, id == p.person})
			switch {
			case id == p.person:
				rank1++
				if known {
					in++
				}
			case known:
				wrong++
			}
		}
		above := 0
		for _, g := range genuineScores {
			if g.right && g.score > best {
				above++
			}
		}
		pct := func(k, n int) string { return fmt.Sprintf("%.2f %%", 100*float64(k)/float64(n)) }
		fmt.Fprintf(&table, "| %s | %.4g | %s | %s | %d | %d of %d | %s |\n", label, bar, pct(rank1, genuine), pct(in, genuine), wrong, strangerIn, strangers, pct(above, genuine))
		for _, w := range roster.Scoring.Warnings {
			t.Logf("%s: %s", label, w)
		}
	}
	t.Logf("LFW View 1 test people at the door (%d enrolled, margin %.2f), heads calibrated at --far %s:\n%s", enrolled, margin, far, table.String())
}
