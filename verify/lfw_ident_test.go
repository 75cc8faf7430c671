package verify_test

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/facegate/facegate/camera"
	"github.com/facegate/facegate/verify"
)

// TestLFWIdentification measures one-shot 1:N identification on LFW's
// View 1 test people (disjoint from anything the encoder was tuned on
// here): the figures, and best-of against mean template. It embeds
// 3,708 images (minutes), so it runs only when asked:
//
//	FACEGATE_LFW_IDENT=1 go test ./verify -run LFWIdentification -v -timeout 30m
func TestLFWIdentification(t *testing.T) {
	if os.Getenv("FACEGATE_LFW_IDENT") == "" {
		t.Skip("set FACEGATE_LFW_IDENT=1 to run (embeds 3,708 LFW images)")
	}
	type person struct {
		name string
		n    int
	}
	f, err := os.Open(filepath.Join(shared, "lfw-view1/peopleDevTest.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var people []person
	sc := bufio.NewScanner(f)
	sc.Scan() // count
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		n, err := strconv.Atoi(fs[1])
		if err != nil {
			t.Fatal(err)
		}
		people = append(people, person{fs[0], n})
	}
	path := func(name string, i int) string { return fmt.Sprintf("%s/%s_%04d.jpg", name, name, i) }
	var images []string
	for _, p := range people {
		for i := 1; i <= p.n; i++ {
			images = append(images, path(p.name, i))
		}
	}

	embs := embedAllCentral(t, images)
	missing := 0
	for _, e := range embs {
		if e.Vector == nil {
			missing++
		}
	}
	t.Logf("%d people, %d images, %d without a face", len(people), len(images), missing)

	// run enrolls the first k photos of each person with more than k, and
	// identifies their other photos (genuine probes) and every photo of the
	// people with at most k (strangers, never enrolled).
	run := func(k int, combine verify.Combine, label string) {
		var enrolled []verify.Enrolled
		for _, p := range people {
			if p.n <= k {
				continue
			}
			var ts [][]float32
			for i := 1; i <= k; i++ {
				if e := embs[path(p.name, i)]; e.Vector != nil {
					ts = append(ts, e.Vector)
				}
			}
			enrolled = append(enrolled, verify.Enrolled{ID: p.name, Name: p.name, Templates: ts})
		}
		g, err := verify.NewGallery(files.EncoderID, verify.EmbeddingDim, enrolled, combine, 0)
		if err != nil {
			t.Fatal(err)
		}
		type probe struct {
			stranger, right bool
			score, margin   float32
		}
		var probes []probe
		var genuine, rank1, accepted, wrongAccepted, strangers, strangerAccepted int
		for _, p := range people {
			for i := 1; i <= p.n; i++ {
				stranger := p.n <= k
				if !stranger && i <= k {
					continue
				}
				e := embs[path(p.name, i)]
				if stranger {
					strangers++
				} else {
					genuine++
				}
				if e.Vector == nil {
					continue // no face: never identified, never accepted
				}
				m, err := g.Search(e)
				if err != nil {
					t.Fatal(err)
				}
				id, _ := g.Person(m.Person)
				probes = append(probes, probe{stranger, !stranger && id == p.name, m.Score, m.Margin()})
				ok := m.Score >= verify.DefaultThreshold
				switch {
				case stranger && ok:
					strangerAccepted++
				case !stranger && id == p.name:
					rank1++
					if ok {
						accepted++
					}
				case !stranger && ok:
					wrongAccepted++
				}
			}
		}
		t.Logf("%s: %d enrolled with %d photo(s) each, %d genuine probes, %d stranger probes", label, g.Len(), k, genuine, strangers)
		t.Logf("%s: rank-1 identification %.2f%% (%d/%d); accepted as the right person at threshold %.2f: %.2f%%; accepted as the wrong person: %.2f%% (%d); strangers accepted (false accept): %.2f%% (%d/%d)",
			label, 100*float64(rank1)/float64(genuine), rank1, genuine, verify.DefaultThreshold,
			100*float64(accepted)/float64(genuine), 100*float64(wrongAccepted)/float64(genuine), wrongAccepted,
			100*float64(strangerAccepted)/float64(strangers), strangerAccepted, strangers)
		// The door accepts score >= threshold and margin >= 0.05.
		for _, th := range []float32{0.30, 0.35, 0.40, 0.45, 0.50, 0.55, 0.60} {
			var right, wrong, strange int
			for _, pr := range probes {
				if pr.score < th || pr.margin < 0.05 {
					continue
				}
				switch {
				case pr.stranger:
					strange++
				case pr.right:
					right++
				default:
					wrong++
				}
			}
			t.Logf("%s: threshold %.2f, margin 0.05: right person %.2f%%, wrong person %.2f%% (%d), strangers %.2f%% (%d)",
				label, th, 100*float64(right)/float64(genuine), 100*float64(wrong)/float64(genuine), wrong,
				100*float64(strange)/float64(strangers), strange)
		}
	}
	run(1, verify.BestOf, "one-shot")
	run(2, verify.BestOf, "two photos, best-of")
	run(2, verify.MeanTemplate, "two photos, mean template")
	run(3, verify.BestOf, "three photos, best-of")
	run(3, verify.MeanTemplate, "three photos, mean template")
}

// embedAllCentral embeds the central face of each LFW image with two
// pipelines at once; an image without a face maps to a zero Embedding.
func embedAllCentral(t *testing.T, images []string) map[string]verify.Embedding {
	t.Helper()
	out := make(map[string]verify.Embedding, len(images))
	var mu sync.Mutex
	jobs := make(chan string)
	var wg sync.WaitGroup
	errc := make(chan error, 2)
	done := make(chan struct{})
	var once sync.Once
	fail := func(err error) {
		errc <- err
		once.Do(func() { close(done) })
	}
	for w := 0; w < 2; w++ {
		p, err := verify.Open(rt, files, 1)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer p.Close()
			for name := range jobs {
				img, err := camera.ReadImage(filepath.Join(shared, "lfw-view1/images", name), camera.DefaultMaxPixels)
				if err != nil {
					fail(err)
					return
				}
				e, _, err := p.EmbedOne(img, verify.Central)
				img.Close()
				if err != nil && !errors.Is(err, verify.ErrNoFace) {
					fail(err)
					return
				}
				mu.Lock()
				out[name] = e
				mu.Unlock()
			}
		}()
	}
feed:
	for _, name := range images {
		select {
		case jobs <- name:
		case <-done:
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	select {
	case err := <-errc:
		t.Fatal(err)
	default:
	}
	return out
}
