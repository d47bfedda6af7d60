// tlogcheck verifies a Comuna transparency log with Go's own implementation of the formats
// (golang.org/x/mod/sumdb/note and sumdb/tlog), independent of Comuna's code.
//
// Input (stdin, JSON): the log's verifier key, its signed checkpoint, the hash tiles by C2SP
// path (base64), the entries to prove (index and base64 entry, with Comuna's inclusion proof),
// and an older tree head with Comuna's consistency proof. Output (stdout, JSON): what Go found.
// Exit status 1 when anything does not verify.
package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

type entry struct {
	Index int64    `json:"index"`
	Entry string   `json:"entry"`
	Proof []string `json:"proof"`
}

type input struct {
	Vkey       string            `json:"vkey"`
	Checkpoint string            `json:"checkpoint"`
	Tiles      map[string]string `json:"tiles"`
	Entries    []entry           `json:"entries"`
	OldSize    int64             `json:"old_size"`
	OldRoot    string            `json:"old_root"`
	OldProof   []string          `json:"old_proof"`
}

type tileReader struct{ tiles map[string]string }

func (r tileReader) Height() int { return 8 }

func (r tileReader) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		// Go's sumdb paths name the height (tile/8/...); C2SP tlog-tiles fixes it at 8 and drops it.
		path := strings.Replace(t.Path(), "tile/8/", "tile/", 1)
		data, ok := r.tiles[path]
		if !ok {
			return nil, fmt.Errorf("missing tile %s", path)
		}
		raw, err := base64.StdEncoding.DecodeString(data)
		if err != nil {
			return nil, err
		}
		out[i] = raw
	}
	return out, nil
}

func (r tileReader) SaveTiles([]tlog.Tile, [][]byte) {}

func hashes(encoded []string) (tlog.TreeProof, error) {
	out := make(tlog.TreeProof, len(encoded))
	for i, e := range encoded {
		raw, err := base64.StdEncoding.DecodeString(e)
		if err != nil || len(raw) != tlog.HashSize {
			return nil, fmt.Errorf("bad hash %q", e)
		}
		copy(out[i][:], raw)
	}
	return out, nil
}

func run(in input) error {
	verifier, err := note.NewVerifier(in.Vkey)
	if err != nil {
		return fmt.Errorf("verifier key: %w", err)
	}
	opened, err := note.Open([]byte(in.Checkpoint), note.VerifierList(verifier))
	if err != nil {
		return fmt.Errorf("checkpoint signature: %w", err)
	}
	lines := strings.Split(opened.Text, "\n")
	if len(lines) < 4 {
		return fmt.Errorf("checkpoint body too short")
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil {
		return fmt.Errorf("checkpoint size: %w", err)
	}
	root, err := tlog.ParseHash(lines[2])
	if err != nil {
		return fmt.Errorf("checkpoint root: %w", err)
	}
	tree := tlog.Tree{N: size, Hash: root}
	// Every tile read through this reader is checked against the signed root first.
	reader := tlog.TileHashReader(tree, tileReader{in.Tiles})
	top, err := tlog.TreeHash(size, reader)
	if err != nil || top != root {
		return fmt.Errorf("tree hash from the tiles: %v", err)
	}
	for _, e := range in.Entries {
		data, err := base64.StdEncoding.DecodeString(e.Entry)
		if err != nil {
			return err
		}
		goProof, err := tlog.ProveRecord(size, e.Index, reader)
		if err != nil {
			return fmt.Errorf("entry %d: proof from the tiles: %w", e.Index, err)
		}
		if err := tlog.CheckRecord(goProof, size, root, e.Index, tlog.RecordHash(data)); err != nil {
			return fmt.Errorf("entry %d: %w", e.Index, err)
		}
		theirs, err := hashes(e.Proof)
		if err != nil {
			return err
		}
		if err := tlog.CheckRecord(tlog.RecordProof(theirs), size, root, e.Index, tlog.RecordHash(data)); err != nil {
			return fmt.Errorf("entry %d: Comuna's inclusion proof: %w", e.Index, err)
		}
	}
	if in.OldSize > 0 {
		oldRoot, err := tlog.ParseHash(in.OldRoot)
		if err != nil {
			return err
		}
		theirs, err := hashes(in.OldProof)
		if err != nil {
			return err
		}
		if err := tlog.CheckTree(theirs, size, root, in.OldSize, oldRoot); err != nil {
			return fmt.Errorf("Comuna's consistency proof from %d: %w", in.OldSize, err)
		}
		goProof, err := tlog.ProveTree(size, in.OldSize, reader)
		if err != nil {
			return err
		}
		if err := tlog.CheckTree(goProof, size, root, in.OldSize, oldRoot); err != nil {
			return fmt.Errorf("consistency from %d: %w", in.OldSize, err)
		}
	}
	return nil
}

func main() {
	var in input
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		fmt.Fprintln(os.Stderr, "tlogcheck: reading input:", err)
		os.Exit(2)
	}
	if err := run(in); err != nil {
		json.NewEncoder(os.Stdout).Encode(map[string]any{"ok": false, "error": err.Error()})
		os.Exit(1)
	}
	json.NewEncoder(os.Stdout).Encode(map[string]any{"ok": true, "entries": len(in.Entries)})
}
