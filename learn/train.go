package learn

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"time"
)

// Config says what to train and how. Zero fields take the method's
// default (see Defaults).
type Config struct {
	Method Method `json:"method"`
	// Dim is the triplet projection's output dimension; the default, the
	// embeddings' own, starts training from the identity (plain cosine).
	Dim   int     `json:"dim,omitempty"`
	Alpha float64 `json:"alpha,omitempty"` // triplet margin α
	LR    float64 `json:"lr"`              // Adam learning rate
	// Epochs: a triplet epoch draws as many embeddings as the training
	// people with several have; a pair-head epoch as many pairs as there
	// are training embeddings.
	Epochs    int    `json:"epochs"`
	Batch     int    `json:"batch"`                // embeddings (triplet) or pairs per mini-batch
	PerPerson int    `json:"per_person,omitempty"` // triplet: embeddings of each person in a batch
	Mining    Mining `json:"mining,omitempty"`     // triplet: how negatives are chosen
	// L2 weighs the regulariser: for triplet, l2·‖W − W₀‖² (towards the
	// starting projection); for the pair heads, (l2/2)·‖w‖². Negative for
	// none.
	L2      float64 `json:"l2"`
	Seed    uint64  `json:"seed"`
	Workers int     `json:"-"` // goroutines for the projection's matrix products; 0: GOMAXPROCS
}

// Defaults fills the zero fields of c for embeddings of dim elements and
// checks the rest.
func (c Config) Defaults(dim int) (Config, error) {
	if _, err := ParseMethod(string(c.Method)); err != nil || c.Method == Cosine {
		return c, fmt.Errorf("learn: cannot train method %q: want triplet, logistic or chi2", c.Method)
	}
	set := func(p *float64, v float64) {
		if *p == 0 {
			*p = v
		}
	}
	seti := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	if c.Method == Triplet {
		seti(&c.Dim, dim)
		set(&c.Alpha, 0.2)
		set(&c.LR, 1e-4)
		seti(&c.Epochs, 10)
		seti(&c.Batch, 64)
		seti(&c.PerPerson, 4)
		set(&c.L2, 1e-3)
		if c.Mining == "" {
			c.Mining = SemiHard
		}
	} else {
		c.Dim, c.Alpha, c.PerPerson, c.Mining = 0, 0, 0, ""
		set(&c.LR, 1e-2)
		seti(&c.Epochs, 20)
		seti(&c.Batch, 128)
		set(&c.L2, 1e-4)
	}
	if c.L2 < 0 {
		c.L2 = 0
	}
	if c.Workers <= 0 {
		c.Workers = runtime.GOMAXPROCS(0)
	}
	switch {
	case c.Method == Triplet && (c.Dim < 1 || c.Dim > dim):
		return c, fmt.Errorf("learn: dimension %d: must be 1 to %d, the embeddings'", c.Dim, dim)
	case c.Method == Triplet && !(c.Alpha > 0):
		return c, fmt.Errorf("learn: margin α %g: must be positive", c.Alpha)
	case !(c.LR > 0) || math.IsInf(c.LR, 0):
		return c, fmt.Errorf("learn: learning rate %g: must be positive", c.LR)
	case c.Epochs < 1:
		return c, fmt.Errorf("learn: %d epochs: need at least 1", c.Epochs)
	case c.Batch < 2:
		return c, fmt.Errorf("learn: batch of %d: need at least 2", c.Batch)
	case c.Method == Triplet && (c.PerPerson < 2 || c.Batch < 2*c.PerPerson):
		return c, fmt.Errorf("learn: batch %d with %d per person: need at least 2 per person and 2 people per batch", c.Batch, c.PerPerson)
	case math.IsNaN(c.L2) || math.IsInf(c.L2, 0):
		return c, fmt.Errorf("learn: l2 %g", c.L2)
	}
	if c.Method == Triplet {
		if _, err := ParseMining(string(c.Mining)); err != nil {
			return c, fmt.Errorf("learn: %w", err)
		}
	}
	return c, nil
}

// Epoch is the progress after one epoch.
type Epoch struct {
	Epoch, Epochs int
	Loss          float64 // mean objective over the epoch's batches, regulariser included
	// Active is, for triplet, the share of mined triplets with a positive
	// loss; for the pair heads, the share of pairs on the wrong side of
	// ŷ = ½.
	Active  float64
	Val     *Metrics // on the held-out people; nil without them
	Elapsed time.Duration
}

// Result is a trained head and how it was made and measured.
type Result struct {
	Head             Head     `json:"-"`
	Config           Config   `json:"config"`
	TrainPeople      int      `json:"train_people"`
	TrainEmbeddings  int      `json:"train_embeddings"`
	ValPeople        int      `json:"val_people"`
	ValEmbeddings    int      `json:"val_embeddings"`
	BestEpoch        int      `json:"best_epoch"` // the epoch kept (best on validation, else the last); 0 is the starting point
	Validation       *Metrics `json:"validation,omitempty"`
	CosineValidation *Metrics `json:"cosine_validation,omitempty"` // plain cosine on the same pairs
	// StartValidation measures the starting point, before any step: the
	// identity (plain cosine) or a random projection for triplet, the
	// unweighted L1 or χ² distance for the pair heads.
	StartValidation *Metrics `json:"start_validation,omitempty"`
	Training        Metrics  `json:"training"` // the head on pairs of the training people
	Seconds         float64  `json:"seconds"`
}

// Train trains a head on the people of train, measuring it after every
// epoch on the people of val (which may be empty) and keeping the epoch
// that did best there; without val it keeps the last. progress, if not
// nil, is called after every epoch. The head's threshold is the one that
// maximised accuracy on the validation pairs (the training pairs without
// them); Calibrate sets one for a target false-accept rate.
//
// Train needs at least two people with two or more embeddings each.
func Train(ctx context.Context, cfg Config, train, val Set, progress func(Epoch)) (*Result, error) {
	start := time.Now()
	td, err := newData(train)
	if err != nil {
		return nil, err
	}
	if cfg, err = cfg.Defaults(td.dim); err != nil {
		return nil, err
	}
	multi := td.multi()
	if len(multi) < 2 {
		return nil, fmt.Errorf("learn: %d training people have two or more embeddings: need at least 2", len(multi))
	}
	t := &trainer{cfg: cfg, td: td, multi: multi, progress: progress, start: start,
		rng: rand.New(rand.NewPCG(cfg.Seed, 0x7a1e))}
	res := &Result{Config: cfg, TrainPeople: len(td.byPerson), TrainEmbeddings: td.n()}
	if val.Len() > 0 {
		if t.vd, err = newData(val); err != nil {
			return nil, fmt.Errorf("validation: %w", err)
		}
		if t.vd.dim != td.dim {
			return nil, fmt.Errorf("learn: validation embeddings have %d dimensions, training ones %d", t.vd.dim, td.dim)
		}
		res.ValPeople, res.ValEmbeddings = len(t.vd.byPerson), t.vd.n()
		t.vpairs = evalPairs(t.vd, valPairsPerPerson, cfg.Seed)
		if t.vpairs != nil {
			cos, err := measure(t.vpairs, func(i, j int) float64 { return dot64(t.vd.row(i), t.vd.row(j)) })
			if err != nil {
				return nil, err
			}
			res.CosineValidation = &cos
		}
	}
	var head Head
	if cfg.Method == Triplet {
		head, res.BestEpoch, err = t.triplet(ctx)
	} else {
		head, res.BestEpoch, err = t.pairs(ctx)
	}
	if err != nil {
		return nil, err
	}
	res.StartValidation = t.start0

	// Measure the head as it will score (float32), and set its threshold.
	if t.vpairs != nil {
		m, err := measure(t.vpairs, func(i, j int) float64 { return float64(head.Score(val.Vectors[i], val.Vectors[j])) })
		if err != nil {
			return nil, err
		}
		res.Validation = &m
	}
	if res.Training, err = measure(evalPairs(td, valPairsPerPerson, cfg.Seed), func(i, j int) float64 {
		return float64(head.Score(train.Vectors[i], train.Vectors[j]))
	}); err != nil {
		return nil, err
	}
	threshold := res.Training.Threshold
	if res.Validation != nil {
		threshold = res.Validation.Threshold
	}
	res.Head = head.WithThreshold(float32(threshold))
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}

// uniformPairs is how many pairs, at least, the pair heads fit their
// starting point on.
const uniformPairs = 20000

// trainer holds what the training loops share.
type trainer struct {
	cfg      Config
	td, vd   *data
	multi    []int
	vpairs   []pair
	rng      *rand.Rand
	progress func(Epoch)
	start    time.Time
	start0   *Metrics // the starting point on validation
}

// keep tracks the best epoch on validation, or the last without it.
type keep struct {
	params []float64
	val    *Metrics
	epoch  int
}

func (k *keep) offer(epoch int, params []float64, val *Metrics) {
	if k.params == nil || val == nil || k.val == nil || better(*val, *k.val) {
		k.params = append(k.params[:0], params...)
		k.val, k.epoch = val, epoch
	}
}

func (t *trainer) report(e Epoch) {
	e.Epochs = t.cfg.Epochs
	e.Elapsed = time.Since(t.start)
	if t.progress != nil {
		t.progress(e)
	}
}

// epoch0 measures the starting point on the validation pairs, if any,
// and offers it as the best so far.
func (t *trainer) epoch0(best *keep, params []float64, score func() func(i, j int) float64) error {
	if t.vpairs == nil {
		return nil
	}
	val, err := t.validate(score())
	if err != nil {
		return err
	}
	t.start0 = val
	best.offer(0, params, val)
	return nil
}

func (t *trainer) validate(score func(i, j int) float64) (*Metrics, error) {
	if t.vpairs == nil {
		return nil, nil
	}
	m, err := measure(t.vpairs, score)
	return &m, err
}

func (t *trainer) triplet(ctx context.Context) (Head, int, error) {
	cfg, td := t.cfg, t.td
	lin := newLinear(td.dim, cfg.Dim, t.rng)
	w0 := slices.Clone(lin.w)
	opt := newAdam(cfg.LR, len(lin.w))
	dw := make([]float64, len(lin.w))
	st := &batchState{workers: cfg.Workers}
	var best keep
	// Epoch 0, where training starts, is a candidate too: with the
	// identity, plain cosine.
	if err := t.epoch0(&best, lin.w, func() func(i, j int) float64 {
		g := lin.projectAll(t.vd, cfg.Workers)
		return func(i, j int) float64 { return dot64(g[i*lin.out:(i+1)*lin.out], g[j*lin.out:(j+1)*lin.out]) }
	}); err != nil {
		return nil, 0, err
	}
	multiRows := 0
	for _, p := range t.multi {
		multiRows += len(td.byPerson[p])
	}
	batches := max(1, (multiRows+cfg.Batch-1)/cfg.Batch)
	var rows []int
	labels := make([]int, 0, cfg.Batch)
	for epoch := 1; epoch <= cfg.Epochs; epoch++ {
		var sum float64
		var triplets, active int
		for range batches {
			if err := ctx.Err(); err != nil {
				return nil, 0, err
			}
			rows = pkBatch(td, t.multi, cfg.Batch, cfg.PerPerson, t.rng, rows)
			st.reset(rows, lin.out)
			lin.forward(td, st)
			labels = labels[:0]
			for _, r := range rows {
				labels = append(labels, td.label[r])
			}
			ts := mine(st.g, lin.out, labels, cfg.Mining, t.rng)
			clear(dw)
			loss, act := lin.tripletObjective(td, st, ts, cfg.Alpha, cfg.L2, w0, dw)
			opt.step(lin.w, dw)
			sum += loss
			triplets += len(ts)
			active += act
		}
		e := Epoch{Epoch: epoch, Loss: sum / float64(batches)}
		if triplets > 0 {
			e.Active = float64(active) / float64(triplets)
		}
		var g []float64
		if t.vpairs != nil {
			g = lin.projectAll(t.vd, cfg.Workers)
		}
		val, err := t.validate(func(i, j int) float64 {
			return dot64(g[i*lin.out:(i+1)*lin.out], g[j*lin.out:(j+1)*lin.out])
		})
		if err != nil {
			return nil, 0, err
		}
		e.Val = val
		best.offer(epoch, lin.w, val)
		t.report(e)
	}
	return &projectionHead{p: projectionFrom64(lin.in, lin.out, best.params)}, best.epoch, nil
}

func (t *trainer) pairs(ctx context.Context) (Head, int, error) {
	cfg, td := t.cfg, t.td
	if len(td.byPerson) < 2 {
		return nil, 0, errors.New("learn: need at least two training people")
	}
	m := newPairModel(cfg.Method, td.dim)
	theta := make([]float64, td.dim+1) // w, then b
	grad := make([]float64, td.dim+1)
	opt := newAdam(cfg.LR, len(theta))
	pb := &pairBatch{dim: td.dim}
	var pairs []pair
	var best keep
	batches := max(1, (td.n()+cfg.Batch-1)/cfg.Batch)
	var vx func(i int) []float64
	if t.vd != nil {
		vx = t.vd.row
	}
	scratch := make([]float64, td.dim)
	m.fitUniform(td.row, balancedPairs(td, t.multi, max(uniformPairs, td.n()), t.rng, nil))
	w0 := slices.Clone(m.w)
	copy(theta, m.w)
	theta[td.dim] = m.b
	// Epoch 0, the unweighted distance, is a candidate too.
	if err := t.epoch0(&best, theta, func() func(i, j int) float64 {
		return func(i, j int) float64 { return m.logit(vx(i), vx(j), scratch) }
	}); err != nil {
		return nil, 0, err
	}
	for epoch := 1; epoch <= cfg.Epochs; epoch++ {
		var sum float64
		var n, wrong int
		for range batches {
			if err := ctx.Err(); err != nil {
				return nil, 0, err
			}
			pairs = balancedPairs(td, t.multi, cfg.Batch, t.rng, pairs)
			pb.fill(td.row, m, pairs)
			clear(grad)
			loss, w := m.objective(pb, cfg.L2, w0, grad[:td.dim], &grad[td.dim])
			opt.step(theta, grad)
			copy(m.w, theta[:td.dim])
			m.b = theta[td.dim]
			sum += loss
			n += len(pairs)
			wrong += w
		}
		e := Epoch{Epoch: epoch, Loss: sum / float64(batches), Active: float64(wrong) / float64(n)}
		val, err := t.validate(func(i, j int) float64 { return m.logit(vx(i), vx(j), scratch) })
		if err != nil {
			return nil, 0, err
		}
		e.Val = val
		best.offer(epoch, theta, val)
		t.report(e)
	}
	h := &pairHead{method: cfg.Method, dim: td.dim, w: make([]float32, td.dim), b: float32(best.params[td.dim])}
	for k := range h.w {
		h.w[k] = float32(best.params[k])
	}
	if cfg.Method == Chi2 {
		h.eps = Chi2Epsilon
	}
	return h, best.epoch, nil
}
