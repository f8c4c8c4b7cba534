package projectiontest_test

import (
	"context"
	"testing"
	"time"

	"github.com/butakero/butakero/platform/searchcache"
	"github.com/butakero/butakero/platform/store/kvstore"
	"github.com/butakero/butakero/platform/testkit/natstest"
	"github.com/butakero/butakero/platform/testkit/projectiontest"
)

func openKV(t *testing.T) *kvstore.Store {
	env := natstest.Start(t)
	return natstest.Open(context.Background(), t, kvstore.Open, env.JS, 1)
}

// TestKVStore runs the contracts against JetStream KV, one embedded server
// per case. kvstore writes unconditionally (the recorder skips applied
// events itself), so the conditional cases are not its contract.
func TestKVStore(t *testing.T) {
	projectiontest.Run(t, func(t *testing.T) projectiontest.Store { return openKV(t) }, projectiontest.Options{})
}

func TestKVCatalog(t *testing.T) {
	projectiontest.RunCatalog(t, func(t *testing.T) projectiontest.Catalog { return openKV(t) })
}

func TestKVCache(t *testing.T) {
	projectiontest.RunCache(t, func(t *testing.T) searchcache.Cache {
		env := natstest.Start(t)
		c, err := kvstore.OpenCache(context.Background(), env.JS, 1, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return c
	})
}
