package host

import "testing"

func TestInflight(t *testing.T) {
	var f inflight
	isClosed := func(c <-chan struct{}) bool {
		select {
		case <-c:
			return true
		default:
			return false
		}
	}
	if !isClosed(f.idle()) {
		t.Fatal("idle with nothing running is not closed")
	}
	f.add()
	f.add()
	first := f.idle()
	f.done()
	if isClosed(first) {
		t.Fatal("idle closed with one still running")
	}
	f.done()
	if !isClosed(first) {
		t.Fatal("idle not closed when the last ended")
	}
	f.add() // work may start again after the count reached zero
	second := f.idle()
	if isClosed(second) {
		t.Fatal("a new round's idle is already closed")
	}
	f.done()
	if !isClosed(second) {
		t.Fatal("the new round's idle not closed")
	}
}
