package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/troupe-dev/troupe/internal/natstest"
	"github.com/troupe-dev/troupe/pb"
	"github.com/troupe-dev/troupe/protocol"
	"github.com/troupe-dev/troupe/router"
)

// BenchmarkStateKeysAB chooses how an actor's named state keys are saved
// together with compare-and-set, by comparing the two ways JetStream
// allows, in alternating phases of one run:
//
//   - map: one KV value per actor holding every key (a pb.ActorState),
//     published with Nats-Expected-Last-Subject-Sequence: atomic by
//     construction, but a turn rewrites all keys;
//   - batch: one KV entry per key, the turn's changed keys published as one
//     JetStream atomic batch (Nats-Batch-Id, a per-message expected
//     subject sequence, Nats-Batch-Commit on the last; the stream allows
//     atomic publish): a turn writes only what changed.
//
// Cases: how many keys the actor has, their size, and how many a turn
// changes. Each reports both sides' p50 save latency and throughput and
// their ratios (batch/map). Loading is not timed: the map is one get, the
// per-key layout a multi-subject get (or a consumer) per activation.
//
//	go test -run '^$' -bench StateKeysAB -benchtime=1x ./bench/
func BenchmarkStateKeysAB(b *testing.B) {
	s := natstest.Server(b)
	nc := natstest.Connect(b, s)
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "bench_state", History: 1, Storage: jetstream.FileStorage})
	if err != nil {
		b.Fatal(err)
	}
	stream, err := js.Stream(ctx, protocol.KVStream(kv.Bucket()))
	if err != nil {
		b.Fatal(err)
	}
	cfg := stream.CachedInfo().Config
	cfg.AllowAtomicPublish = true
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		b.Fatal(err)
	}
	// Saves are bounded by the client's default timeouts (5 s for
	// JetStream publishes, 10 s for a batch commit).
	saveCtx := context.Background()
	for _, c := range []struct {
		keys, size, changed, callers int
	}{
		{4, 64, 4, 1}, {4, 64, 1, 1}, {16, 1024, 1, 1}, {16, 1024, 16, 1}, {4, 64, 2, 16},
	} {
		name := fmt.Sprintf("keys%d-size%d-changed%d-callers%d", c.keys, c.size, c.changed, c.callers)
		b.Run(name, func(b *testing.B) {
			maps, batches := make([]*mapWriter, c.callers), make([]*batchWriter, c.callers)
			for g := range c.callers {
				actor := fmt.Sprintf("%s.%s.a%d", name, router.NewChainID()[:8], g) // fresh keys on every run
				maps[g] = &mapWriter{js: js, subject: "$KV.bench_state.map." + actor, keys: c.keys, size: c.size}
				batches[g] = &batchWriter{nc: nc, js: js, prefix: "$KV.bench_state.batch." + actor + ".", revs: make([]uint64, c.keys), size: c.size}
			}
			mapSide, batchSide := &abSide{}, &abSide{}
			for round := range *abRounds {
				sides := []func(){
					func() { mapSide.phase(b, c.callers, func(g int) error { return maps[g].save(saveCtx, c.changed) }) },
					func() {
						batchSide.phase(b, c.callers, func(g int) error { return batches[g].save(saveCtx, c.changed) })
					},
				}
				if round%2 == 1 {
					slices.Reverse(sides)
				}
				for _, run := range sides {
					run()
				}
			}
			b.ReportMetric(micros(mapSide.p50()), "map-p50-µs")
			b.ReportMetric(micros(batchSide.p50()), "batch-p50-µs")
			b.ReportMetric(mapSide.rate(), "map-saves/s")
			b.ReportMetric(batchSide.rate(), "batch-saves/s")
			b.ReportMetric(float64(batchSide.p50())/float64(mapSide.p50()), "batch/map-p50")
			b.ReportMetric(batchSide.rate()/mapSide.rate(), "batch/map-throughput")
		})
	}
}

// mapWriter saves all of an actor's keys as one value.
type mapWriter struct {
	js         jetstream.JetStream
	subject    string
	keys, size int
	rev        uint64
	turn       int
}

func (w *mapWriter) save(ctx context.Context, changed int) error {
	w.turn++
	st := &pb.ActorState{}
	for k := range w.keys {
		v := make([]byte, w.size)
		if k < changed {
			v[0] = byte(w.turn)
		}
		st.Entries = append(st.Entries, &pb.StateEntry{Name: "k" + strconv.Itoa(k), Value: v})
	}
	data, err := proto.Marshal(st)
	if err != nil {
		return err
	}
	ack, err := w.js.Publish(ctx, w.subject, data, jetstream.WithExpectLastSequencePerSubject(w.rev))
	if err != nil {
		return err
	}
	w.rev = ack.Sequence
	return nil
}

// batchWriter saves the changed keys as one entry each, in one atomic
// batch.
type batchWriter struct {
	nc     *nats.Conn
	js     jetstream.JetStream
	prefix string
	revs   []uint64
	size   int
	turn   int
}

func (w *batchWriter) save(ctx context.Context, changed int) error {
	w.turn++
	if changed == 1 { // one key: a plain compare-and-set publish
		v := make([]byte, w.size)
		v[0] = byte(w.turn)
		ack, err := w.js.Publish(ctx, w.prefix+"k0", v, jetstream.WithExpectLastSequencePerSubject(w.revs[0]))
		if err != nil {
			return err
		}
		w.revs[0] = ack.Sequence
		return nil
	}
	id := router.NewChainID() // any unique id of at most 64 characters
	for k := range changed {
		v := make([]byte, w.size)
		v[0] = byte(w.turn)
		m := nats.NewMsg(w.prefix + "k" + strconv.Itoa(k))
		m.Data = v
		m.Header.Set("Nats-Batch-Id", id)
		m.Header.Set("Nats-Batch-Sequence", strconv.Itoa(k+1))
		m.Header.Set("Nats-Expected-Last-Subject-Sequence", strconv.FormatUint(w.revs[k], 10))
		if k < changed-1 {
			if err := w.nc.PublishMsg(m); err != nil {
				return err
			}
			continue
		}
		m.Header.Set("Nats-Batch-Commit", "1")
		resp, err := w.nc.RequestMsg(m, 10*time.Second)
		if err != nil {
			return err
		}
		var ack struct {
			Seq   uint64 `json:"seq"`
			Count int    `json:"count"`
			Error *struct {
				Description string `json:"description"`
			} `json:"error"`
		}
		if err := json.Unmarshal(resp.Data, &ack); err != nil {
			return err
		}
		if ack.Error != nil {
			return fmt.Errorf("batch: %s", ack.Error.Description)
		}
		first := ack.Seq - uint64(changed) + 1
		for i := range changed {
			w.revs[i] = first + uint64(i)
		}
	}
	return nil
}
