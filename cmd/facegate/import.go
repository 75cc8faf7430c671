package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/facegate/facegate/store"
)

// ImportCommand enrolls many people at once: from a folder of photos, one
// sub-folder per person, or from a template file another door exported.
type ImportCommand struct {
	stdout, stderr io.Writer
}

const importUsage = `Usage: facegate import --db DB [flags] DIR|FILE

From a folder: each sub-folder is one person, its name the person's id (and
name, with underscores read as spaces), its photos their enrollment photos.
A photo that is refused (no face, several people, blurred, too small...) is
skipped and reported; a person with no usable photo is not enrolled. Each
person is written in a transaction of their own, so an interrupted import
keeps everyone it finished, complete.

From a file written by facegate export: the templates are loaded as they
are, without photos or models; the file's encoder must be this door's.

Examples:

	facegate import --db /var/lib/facegate/facegate.db staff-photos/
	facegate import --db door2.db front-door-templates.json
`

func (c *ImportCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	var mf modelFlags
	mf.register(fs)
	var dbf dbFlag
	dbf.register(fs)
	replace := fs.Bool("replace", false, "replace the templates of people already enrolled instead of adding to them")
	maxPixels := maxPixelsFlag(fs)
	if err := parseFlags(fs, args, c.stderr, importUsage); err != nil {
		return err
	}
	if err := checkMaxPixels(*maxPixels); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("want one folder or file, got %d arguments", fs.NArg())
	}
	src := fs.Arg(0)
	st, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("%s: no such file or folder", src)
	}
	if st.IsDir() {
		return c.fromFolder(ctx, &mf, &dbf, src, *replace, *maxPixels)
	}
	return c.fromFile(ctx, &dbf, src, *replace)
}

func (c *ImportCommand) fromFile(ctx context.Context, dbf *dbFlag, path string, replace bool) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	tf, err := store.ReadTemplates(f)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	db, err := dbf.open(ctx, tf.Model)
	if err != nil {
		return err
	}
	defer db.Close()
	results, err := db.Import(ctx, tf, replace)
	if err != nil {
		return err
	}
	return c.summarise(results)
}

func (c *ImportCommand) summarise(results []store.ImportResult) error {
	var refused int
	for _, r := range results {
		if r.Err != nil {
			refused++
			fmt.Fprintf(c.stderr, "refused %s: %v\n", r.ID, r.Err)
		}
	}
	fmt.Fprintf(c.stderr, "imported %d people, refused %d\n", len(results)-refused, refused)
	if refused > 0 {
		return reportedError{fmt.Errorf("%d people refused", refused)}
	}
	return nil
}

func (c *ImportCommand) fromFolder(ctx context.Context, mf *modelFlags, dbf *dbFlag, dir string, replace bool, maxPixels int) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var people []string
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			people = append(people, e.Name())
		}
	}
	if len(people) == 0 {
		return fmt.Errorf("%s: no sub-folders, one per person, to import", dir)
	}
	slices.Sort(people)
	p, db, closeAll, err := openWithDB(ctx, mf, dbf)
	if err != nil {
		return err
	}
	defer closeAll()

	bar := newProgress(c.stderr, len(people), "importing")
	var results []store.ImportResult
	photosRefused := map[string]int{} // reason → count, for the summary
	for _, id := range people {
		if err := ctx.Err(); err != nil {
			bar.Finish()
			fmt.Fprintf(c.stderr, "interrupted after %d of %d people; everyone imported so far is complete\n", len(results), len(people))
			return err
		}
		photos, notImages := listPhotos(filepath.Join(dir, id))
		for _, n := range notImages {
			photosRefused["not an image"]++
			fmt.Fprintf(c.stderr, "skipped %s: not an image\n", n)
		}
		ts, refusals := enrollmentTemplates(p, photos, maxPixels)
		for _, r := range refusals {
			photosRefused[reasonOf(r)]++
			fmt.Fprintf(c.stderr, "skipped %s\n", r)
		}
		res := store.ImportResult{ID: id, Templates: len(ts)}
		if len(ts) == 0 {
			res.Err = errors.New("no usable photo")
		} else {
			person := store.Person{ID: id, Name: strings.ReplaceAll(id, "_", " "), Active: true}
			res.Err = db.Enroll(ctx, person, ts, replace)
		}
		results = append(results, res)
		bar.Add(1)
	}
	bar.Finish()
	for reason, n := range photosRefused {
		fmt.Fprintf(c.stderr, "%d photo(s) skipped: %s\n", n, reason)
	}
	return c.summarise(results)
}

// listPhotos lists a person's folder: files that look like photos, and the
// others by name.
func listPhotos(dir string) (photos, others []string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, []string{dir}
	}
	for _, e := range entries {
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		path := filepath.Join(dir, e.Name())
		switch strings.ToLower(filepath.Ext(e.Name())) {
		case ".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp":
			photos = append(photos, path)
		default:
			others = append(others, path)
		}
	}
	return photos, others
}

// reasonOf strips the file name from a refusal, for counting reasons.
func reasonOf(refusal string) string {
	if _, reason, ok := strings.Cut(refusal, ": "); ok {
		if i := strings.IndexAny(reason, ":0123456789"); i > 0 {
			return strings.TrimSpace(reason[:i])
		}
		return reason
	}
	return refusal
}
