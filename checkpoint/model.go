package checkpoint

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"irl/weights"
)

// FinalDir names, in a run folder, the finished run's model.
const FinalDir = "final"

// hubID looks like a Hugging Face model id ("owner/name"), which a user may
// give where a local folder is meant.
var hubID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// ModelDir finds the model a path means, so that every command reads a
// training run the same way: a model folder (or an .onnx file) is itself; a
// run folder means its final model (final/) when the run finished, else its
// newest checkpoint; a last-checkpoint file means the checkpoint it names.
// how says which rule applied ("" when the path is a model itself). A
// missing path that looks like a hub id ("EleutherAI/pythia-70m") gets an
// error that says ids are not fetched and how to get the folder; any other
// missing path is returned as it is, for the loader to name.
func ModelDir(path string) (dir, how string, err error) {
	st, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		if hubID.MatchString(path) && weights.KindOf(path) != weights.KindONNX {
			name := path[strings.IndexByte(path, '/')+1:]
			return "", "", fmt.Errorf("%s: no such folder; irl reads local model folders and does not fetch Hugging Face hub ids: download it first (huggingface-cli download %s --local-dir %s) and give the folder", path, path, name)
		}
		return path, "", nil // the loader names what is missing, after the command's own checks
	}
	if err != nil {
		return "", "", err
	}
	if !st.IsDir() {
		if filepath.Base(path) != LastFile {
			return path, "", nil // a model file, such as an .onnx export
		}
		last, err := lastIn(filepath.Dir(path))
		if err != nil {
			return "", "", err
		}
		return last, "the checkpoint " + path + " names", nil
	}
	if exists(filepath.Join(path, "config.json")) {
		return path, "", nil
	}
	if final := filepath.Join(path, FinalDir); exists(filepath.Join(final, "config.json")) {
		return final, "the run's final model", nil
	}
	if exists(filepath.Join(path, LastFile)) {
		last, err := lastIn(path)
		if err != nil {
			return "", "", err
		}
		return last, "the run's newest checkpoint (the run has no final model yet)", nil
	}
	return path, "", nil
}

// lastIn is the checkpoint a run folder's last-checkpoint names, checked to
// be a model folder.
func lastIn(run string) (string, error) {
	last, err := Last(run)
	if err != nil {
		return "", err
	}
	if !exists(filepath.Join(last, "config.json")) {
		return "", fmt.Errorf("%s names %s, which holds no config.json", filepath.Join(run, LastFile), last)
	}
	return last, nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
