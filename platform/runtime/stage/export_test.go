package stage

import "context"

// WaitForSlotWaiters waits until n of w's messages wait for a slot (w
// has Quick and is running): true then, false once ctx ends.
func WaitForSlotWaiters(ctx context.Context, w *Worker, n int) bool {
	return w.gate.waitFor(ctx, n)
}
