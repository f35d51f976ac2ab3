// Copyright 2026 The Flotilla Authors. All rights reserved.

package target

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/flotilladb/flotilla"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// flotillaErr is an error as flotilla's client returns it.
func flotillaErr(outcome flotillapb.Outcome, detail any) error {
	e := &flotillapb.Error{Message: "m", Outcome: outcome}
	switch d := detail.(type) {
	case *flotillapb.InvalidArgument:
		e.Detail = &flotillapb.Error_InvalidArgument{InvalidArgument: d}
	case *flotillapb.ServerBusy:
		e.Detail = &flotillapb.Error_ServerBusy{ServerBusy: d}
	default:
		e.Detail = &flotillapb.Error_Unavailable{Unavailable: &flotillapb.Unavailable{}}
	}
	return &flotilla.Error{Op: "op", Detail: e}
}

func TestClassifyFlotilla(t *testing.T) {
	unknown := flotillaErr(flotillapb.Outcome_UNKNOWN, nil)
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"nil", nil, ""},
		{"deadline", context.DeadlineExceeded, ClassTimeout},
		{"write timed out", withContextErr(expired(), unknown), ClassTimeout},
		{"canceled", fmt.Errorf("x: %w", context.Canceled), ClassCanceled},
		{"invalid", flotillaErr(flotillapb.Outcome_NOT_APPLIED, &flotillapb.InvalidArgument{Field: "key"}), ClassInvalid},
		{"invalid read", flotillaErr(flotillapb.Outcome_OUTCOME_UNSPECIFIED, &flotillapb.InvalidArgument{}), ClassInvalid},
		{"negative limit", fmt.Errorf("%w -1", errNegativeLimit), ClassInvalid},
		{"outcome unknown", unknown, ClassOutcomeUnknown},
		{"not applied", flotillaErr(flotillapb.Outcome_NOT_APPLIED, nil), ClassNotApplied},
		{"busy write", flotillaErr(flotillapb.Outcome_NOT_APPLIED, &flotillapb.ServerBusy{}), ClassNotApplied},
		{"unavailable read", flotillaErr(flotillapb.Outcome_OUTCOME_UNSPECIFIED, nil), ClassUnavailable},
		{"busy read", flotillaErr(flotillapb.Outcome_OUTCOME_UNSPECIFIED, &flotillapb.ServerBusy{}), ClassUnavailable},
		{"closed", flotilla.ErrClosed, ClassOther},
		{"unrelated", errors.New("x"), ClassOther},
	} {
		if got := classifyFlotilla(tc.err); got != tc.want {
			t.Errorf("%s: classifyFlotilla(%v) = %q, want %q", tc.name, tc.err, got, tc.want)
		}
	}
}

func TestClassifyEtcd(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"nil", nil, ""},
		{"deadline", context.DeadlineExceeded, ClassTimeout},
		{"deadline status", status.Error(codes.DeadlineExceeded, "x"), ClassTimeout},
		{"server timeout", rpctypes.ErrTimeout, ClassTimeout},
		{"server timeout, leader failed", fmt.Errorf("put: %w", rpctypes.ErrTimeoutDueToLeaderFail), ClassTimeout},
		{"canceled", context.Canceled, ClassCanceled},
		{"canceled status", status.Error(codes.Canceled, "x"), ClassCanceled},
		{"empty key", rpctypes.ErrEmptyKey, ClassInvalid},
		{"too large", rpctypes.ErrRequestTooLarge, ClassInvalid},
		{"negative limit", fmt.Errorf("%w -1", errNegativeLimit), ClassInvalid},
		{"no leader", rpctypes.ErrNoLeader, ClassUnavailable},
		{"too many requests", rpctypes.ErrTooManyRequests, ClassUnavailable},
		{"no space", rpctypes.ErrNoSpace, ClassUnavailable},
		{"not capable", rpctypes.ErrNotCapable, ClassUnavailable},
		{"connection refused", status.Error(codes.Unavailable, "connection refused"), ClassUnavailable},
		{"no endpoints", clientv3.ErrNoAvailableEndpoints, ClassUnavailable},
		{"compacted", rpctypes.ErrCompacted, ClassOther},
		{"corrupt", rpctypes.ErrCorrupt, ClassOther},
		{"unrelated", errors.New("x"), ClassOther},
	} {
		if got := classifyEtcd(tc.err); got != tc.want {
			t.Errorf("%s: classifyEtcd(%v) = %q, want %q", tc.name, tc.err, got, tc.want)
		}
	}
}

// expired returns a context whose deadline has passed.
func expired() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 0)
	cancel()
	return ctx
}

func TestWithContextErr(t *testing.T) {
	err := errors.New("failed")
	if got := withContextErr(context.Background(), err); got != err {
		t.Errorf("live context: %v", got)
	}
	if got := withContextErr(expired(), nil); got != nil {
		t.Errorf("no error: %v", got)
	}
	got := withContextErr(expired(), err)
	if !errors.Is(got, err) || !errors.Is(got, context.DeadlineExceeded) {
		t.Errorf("expired context: %v", got)
	}
	if again := withContextErr(expired(), got); again != got {
		t.Errorf("added twice: %v", again)
	}
}

func TestParseMetric(t *testing.T) {
	for _, tc := range []struct {
		name, page string
		want       float64
		wantErr    string
	}{
		{name: "plain", page: "# HELP process_cpu_seconds_total CPU.\n# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 1.5\n", want: 1.5},
		{name: "among others", page: "go_goroutines 12\nprocess_cpu_seconds_total 0.25\nprocess_resident_memory_bytes 1e+07\n", want: 0.25},
		{name: "exponent", page: "process_cpu_seconds_total 1.23e+02\n", want: 123},
		{name: "labels and timestamp", page: "process_cpu_seconds_total{a=\"b}\",c=\"d\"} 2 1700000000000\n", want: 2},
		{name: "samples summed", page: "process_cpu_seconds_total{p=\"1\"} 2\nprocess_cpu_seconds_total{p=\"2\"} 3\n", want: 5},
		{name: "indented, tab", page: "  process_cpu_seconds_total\t4\n", want: 4},
		{name: "longer name only", page: "process_cpu_seconds_total_extra 5\n", wantErr: "no process_cpu_seconds_total"},
		{name: "empty", page: "", wantErr: "no process_cpu_seconds_total"},
		{name: "no value", page: "process_cpu_seconds_total \n", wantErr: "no value"},
		{name: "bad value", page: "process_cpu_seconds_total abc\n", wantErr: "invalid syntax"},
		{name: "unterminated labels", page: "process_cpu_seconds_total{a=\"b\" 1\n", wantErr: "unterminated"},
	} {
		got, err := parseMetric(strings.NewReader(tc.page), cpuMetric)
		switch {
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s: got %v, %v; want an error with %q", tc.name, got, err, tc.wantErr)
		case tc.wantErr == "" && (err != nil || got != tc.want):
			t.Errorf("%s: got %v, %v; want %v", tc.name, got, err, tc.want)
		}
	}
}
