package main

import "time"

const (
	backoffInitial = 10 * time.Second
	backoffMax     = 300 * time.Second
)

// backoff follows the kubelet's flowcontrol.Backoff as used for container restarts and
// image pulls: the first failure is retried at once, the next ones after 10 s, 20 s, 40 s...
// up to 5 min, counted from the failure; a record older than twice the maximum is forgotten.
type backoff struct {
	initial, max time.Duration
	delay        time.Duration
	lastFailure  time.Time
	active       bool
}

func newBackoff() *backoff { return &backoff{initial: backoffInitial, max: backoffMax} }

func (b *backoff) expired(now time.Time) bool {
	return !b.active || now.Sub(b.lastFailure) > 2*b.max
}

// wait is how long to hold off at `now` a retry after a failure at `failedAt`.
func (b *backoff) wait(failedAt, now time.Time) time.Duration {
	if b.expired(now) {
		return 0
	}
	if left := b.delay - now.Sub(failedAt); left > 0 {
		return left
	}
	return 0
}

// next records the failure at `failedAt` when the retry happens, growing the delay.
func (b *backoff) next(failedAt time.Time) {
	if b.expired(failedAt) {
		b.delay = b.initial
	} else {
		b.delay *= 2
		if b.delay > b.max {
			b.delay = b.max
		}
	}
	b.lastFailure = failedAt
	b.active = true
}
