package ecs_test

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2/hclwrite"
)

// TestFormatted: every .tf and .tfvars file under deploy/ecs is laid out as
// `terraform fmt` (hclwrite.Format, which it runs) lays it out, so that a
// reviewer's fmt shows no diff.
func TestFormatted(t *testing.T) {
	n := 0
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.Contains(path, "testdata") {
			return err
		}
		if !strings.HasSuffix(path, ".tf") && !strings.HasSuffix(path, ".tfvars.example") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		n++
		if got := hclwrite.Format(src); !bytes.Equal(got, src) {
			t.Errorf("%s is not formatted as terraform fmt would; formatted, it reads:\n%s", path, got)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 20 {
		t.Fatalf("found %d Terraform files: the walk missed the modules", n)
	}
}
