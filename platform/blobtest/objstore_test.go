package blobtest_test

import (
	"context"
	"testing"

	"github.com/butakero/butakero/platform/blobtest"
	"github.com/butakero/butakero/platform/natstest"
	"github.com/butakero/butakero/platform/objstore"
)

// TestObjectStore runs the contract against the JetStream Object Store,
// one embedded server per case.
func TestObjectStore(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) blobtest.Store {
		env := natstest.Start(t)
		s, err := objstore.Open(context.Background(), env.JS, 1)
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
