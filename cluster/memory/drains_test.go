package memory_test

import (
	"context"
	"testing"

	"github.com/switchyard-ai/switchyard/cluster/memory"
)

func TestDrains(t *testing.T) {
	d := memory.NewDrains()
	changes := 0
	d.OnChange(func() { changes++ })
	ctx := context.Background()
	d.SetDrained(ctx, "p", "a:1", true)
	d.SetDrained(ctx, "p", "a:1", true) // no change
	if !d.Drained("p", "a:1") || d.Drained("p", "a:2") || d.Drained("q", "a:1") {
		t.Error("drained set wrong after one drain")
	}
	d.SetDrained(ctx, "p", "a:1", false)
	if d.Drained("p", "a:1") {
		t.Error("still drained after undrain")
	}
	if changes != 2 {
		t.Errorf("%d changes reported, want 2", changes)
	}
}
