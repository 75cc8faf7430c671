package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/facegate/facegate/daemon"
	"github.com/facegate/facegate/learn"
	"github.com/facegate/facegate/store"
)

// HeadsCommand lists the learned heads and chooses the active one.
type HeadsCommand struct {
	stdout, stderr io.Writer
}

const headsUsage = `Usage: facegate heads --db DB [--activate NAME | --deactivate | --remove NAME] [--json]

Lists the heads made by facegate train and facegate calibrate: name, method,
encoder, whether active, when made, accuracy and EER on the held-out people
(with plain cosine's on the same pairs), the 1:1 threshold with the FAR and
FRR calibrate measured there, and the door threshold. At most one head per
encoder is active, and only a head facegate calibrate has given a door
threshold can be: the door and identify score with it, at that threshold.
With no active head, faces are compared by plain cosine at the built-in
threshold.

Examples:

	facegate heads --db /var/lib/facegate/facegate.db
	facegate heads --db gallery.db --activate triplet-20260301-101500
	facegate heads --db gallery.db --deactivate
`

type headJSON struct {
	Name      string          `json:"name"`
	Method    string          `json:"method"`
	Model     string          `json:"model"`
	Active    bool            `json:"active"`
	Created   string          `json:"created"`
	Threshold *float32        `json:"threshold"`
	Metrics   json.RawMessage `json:"metrics"`
}

func (c *HeadsCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("heads", flag.ContinueOnError)
	var dbf dbFlag
	dbf.register(fs)
	activate := fs.String("activate", "", "make this head the active one of its encoder")
	deactivate := fs.Bool("deactivate", false, "make no head active: plain cosine at the built-in threshold")
	remove := fs.String("remove", "", "delete this head")
	asJSON := fs.Bool("json", false, "one JSON line per head instead of the table")
	if err := parseFlags(fs, args, c.stderr, headsUsage); err != nil {
		return err
	}
	actions := 0
	for _, set := range []bool{*activate != "", *deactivate, *remove != ""} {
		if set {
			actions++
		}
	}
	switch {
	case fs.NArg() > 0:
		return usagef("unexpected argument %q", fs.Arg(0))
	case actions > 1:
		return usagef("give one of --activate, --deactivate and --remove")
	}
	db, err := dbf.open(ctx, "")
	if err != nil {
		return err
	}
	defer db.Close()

	switch {
	case *activate != "":
		h, err := db.Head(ctx, *activate)
		if err != nil {
			return err
		}
		// A head the door would not use must never become active.
		if _, _, err := daemon.DoorHead(h); err != nil {
			return fmt.Errorf("head %q in %s cannot be used at the door: %w", h.Name, db.Path(), err)
		}
		if err := db.ActivateHead(ctx, *activate); err != nil {
			return err
		}
		fmt.Fprintf(c.stderr, "head %q (%s) is now active for encoder %s\n", h.Name, h.Method, shortID(h.Model))
	case *deactivate:
		models, err := c.models(ctx, db)
		if err != nil {
			return err
		}
		for _, model := range models {
			was, err := db.DeactivateHeads(ctx, model)
			if err != nil {
				return err
			}
			if was != "" {
				fmt.Fprintf(c.stderr, "head %q is no longer active: plain cosine for encoder %s\n", was, shortID(model))
			}
		}
	case *remove != "":
		if err := db.RemoveHead(ctx, *remove); err != nil {
			return err
		}
		fmt.Fprintf(c.stderr, "removed head %q\n", *remove)
	}
	return c.list(ctx, db, *asJSON)
}

// models lists the encoders that have heads.
func (c *HeadsCommand) models(ctx context.Context, db *store.DB) ([]string, error) {
	hs, err := db.Heads(ctx, "")
	if err != nil {
		return nil, err
	}
	var models []string
	for _, h := range hs {
		if len(models) == 0 || models[len(models)-1] != h.Model {
			models = append(models, h.Model)
		}
	}
	return models, nil
}

func (c *HeadsCommand) list(ctx context.Context, db *store.DB, asJSON bool) error {
	hs, err := db.Heads(ctx, "")
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(c.stdout)
		for _, h := range hs {
			out := headJSON{Name: h.Name, Method: h.Method, Model: h.Model, Active: h.Active, Created: h.Created.Format(time.RFC3339), Metrics: h.Metrics}
			if lh, err := learn.Decode(h.Blob); err == nil {
				t := lh.Threshold()
				out.Threshold = &t
			}
			if err := enc.Encode(out); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tMETHOD\tENCODER\tACTIVE\tCREATED\tVAL ACCURACY\tVAL EER\tCOSINE ACC/EER\tTHRESHOLD\tCALIBRATED\tDOOR THRESHOLD")
	for _, h := range hs {
		m, _ := learn.ReadHeadMetrics(h.Metrics) // a head without metrics shows dashes
		acc, eer, cos, calib, door := "-", "-", "-", "-", "-"
		if v := m.Validation; v != nil {
			acc, eer = fmt.Sprintf("%.2f%%", 100*v.Accuracy), fmt.Sprintf("%.2f%%", 100*v.EER)
		}
		if v := m.CosineValidation; v != nil {
			cos = fmt.Sprintf("%.2f%% / %.2f%%", 100*v.Accuracy, 100*v.EER)
		}
		if k := m.Calibration; k != nil {
			calib = fmt.Sprintf("FAR %.0e: FRR %.2f%%", k.TargetFAR, 100*k.FRR)
			if !k.Resolved {
				calib += " (unresolved)"
			}
		}
		if k := m.Door; k != nil {
			door = fmt.Sprintf("%.4f (%d people, stranger FAR %.0e)", k.Threshold, k.People, k.StrangerFAR)
			if !k.Resolved {
				door += " (unresolved)"
			}
		}
		threshold := "unreadable"
		if lh, err := learn.Decode(h.Blob); err == nil {
			threshold = fmt.Sprintf("%.4f", lh.Threshold())
		}
		active := ""
		if h.Active {
			active = "*"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", h.Name, h.Method, shortID(h.Model), active,
			h.Created.Local().Format("2006-01-02 15:04"), acc, eer, cos, threshold, calib, door)
	}
	tw.Flush()
	fmt.Fprintf(c.stderr, "%d heads\n", len(hs))
	return nil
}

// shortID shortens an encoder identity for tables and messages.
func shortID(model string) string {
	if len(model) > 12 {
		return model[:12]
	}
	return model
}
