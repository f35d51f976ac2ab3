// Copyright 2026 The Flotilla Authors. All rights reserved.

/*
Package multiraft runs every raft group of one store: thousands of
go.etcd.io/raft/v3 RawNodes on a few goroutines, over one engine.

A [Host] owns, for the groups with a replica on its store:

  - a scheduler: a group with work queued runs on one of a fixed pool of
    workers; there is no goroutine per group;
  - a log writer that makes many groups' appends and HardStates durable in
    one engine batch with one fsync, and pipelines the next batch behind it;
  - one ticker for the store, which ticks only the groups that are not
    quiescent;
  - one outgoing queue and sender per peer node, where every group's
    heartbeats are coalesced into one batch per tick;
  - quiescence of idle groups, and a liveness check of peer nodes that
    wakes the groups of a node that went down;
  - linearizable reads (ReadIndex), one round per group at a time (or
    Config.ReadRounds);
  - snapshots, streamed from a consistent engine snapshot and ingested
    atomically;
  - membership changes and leadership transfer, and the replica lifecycle:
    bootstrap, uninitialized replicas, removal and tombstones;
  - log truncation, as a replicated command;
  - splits: a group's apply creates a new group.

It does not know what the groups replicate. A group's state comes through
the [StateMachine] interface (a key range in package shard, the placement
driver's state, a test's log); multiraft imports none of them and knows
nothing of keys, values or ranges beyond the engine spans a state machine
names. Messages leave through the [Transport] interface and arrive through
[Host.HandleBatch] and [Host.HandleSnapshot]; the network is package rpc/raftrpc's
business. Nor does it decide placement: which replicas a group has, and
where, its callers decide (the placement driver, the node), and carry out
through [Host.ProposeConfChange], [Host.TransferLeadership] and
[Host.DestroyRemovedReplica].

# Usage

	h, err := multiraft.NewHost(multiraft.Config{
		NodeID: 1, Engine: eng, Transport: t,
		NewStateMachine: func(g multiraft.GroupID) (multiraft.StateMachine, error) { ... },
	})
	err = h.Bootstrap(7, []multiraft.Replica{{ID: multiraft.MakeReplicaID(1, 1)}, ...})
	res, err := h.Propose(7, cmd).Wait(ctx) // resolves when applied here
	idx, err := h.ReadIndex(ctx, 7)         // then read the state machine
	h.ProposeConfChange(7, multiraft.AddLearner(r))
	h.TransferLeadership(7, r)
	h.Stop()

NewHost loads every group found in the engine and starts them. Every member
of a new group is bootstrapped with the same replicas, each on its own host;
replicas added later are created empty by the first message for them and
filled by a snapshot.

# Identities

[GroupID] is the engine's RangeID: a group's raft state lives under that
range's keys. [NodeID] is a store. A [ReplicaID], raft's node ID, carries
its node in its high 32 bits and a sequence number unique within the group
in its low 32 bits ([MakeReplicaID]), so that a message to a replica is
routed to its node with no directory to persist or keep in sync. Replica
IDs are never reused in a group.

# Goroutines

Raft is driven synchronously: a group's RawNode, like the rest of its
worker-owned state, is touched only by the worker processing the group.
The host's goroutines are:

  - the workers (Config.Workers): each takes a group off the scheduler's
    queue and runs one pass: drain the group's inbox, tick, step messages,
    propose, handle every Ready, apply committed entries;
  - the log writer and its syncer: they write and fsync raft state, then
    deliver the responses raft attached to each write;
  - the ticker: it ticks the active groups, flushes the coalesced
    heartbeats and checks the peers' liveness;
  - one sender per peer node, which hands batches to the Transport;
  - a sender per outgoing snapshot (at most Config.MaxConcurrentSnapshots
    stream at once);
  - after a failure, one goroutine that stops the host.

Each is owned by an internal/stopper Stopper that stops it and waits for it
(a helper goroutine, by the goroutine that starts it). Any goroutine may
call the host's exported methods: work for a group lands in its inbox, a
small mutex-guarded struct, and the group is queued for a worker; a caller
that waits for an outcome ([Proposal.Wait], [Host.ReadIndex],
[Host.HandleSnapshot]) waits on a channel the worker resolves. The
[StateMachine] methods run on their group's worker; the optional
interfaces a state machine may implement say where theirs run.

[Host.Stop] stops the goroutines in stages, each stage's goroutines gone
before the next begins: the ticker and the senders (this also raises the
stop signal that every goroutine and waiting caller watches), the workers,
the snapshot senders (only workers start them), the log writer (only
workers feed it); then it releases the groups and fails what they had
pending. After an error it cannot continue from (an fsync that failed, a
state machine's Apply error) the host stops itself; [Host.Err] says why.

# Invariants

  - A group is processed by at most one worker at a time and queued at
    most once; work that arrives while it is processed runs it again
    after, so per-group order holds and nothing is lost.
  - Worker-owned state (the RawNode, the applied state, pending proposals
    and reads) is touched only by the worker processing the group.
  - A group's writes reach the engine in the order raft emitted them, and
    no response to a write (to the group or to a peer) is delivered before
    the write is durable. After an fsync failed nothing more is delivered:
    raft takes a response as proof that every earlier append is durable.
  - A group's raft log state is written only by the log writer.
  - A command's effects and the applied state that covers it are committed
    in one batch.
  - Nothing is written or acknowledged for a replica after its destruction
    was decided, and a tombstone keeps stale messages from recreating it.
  - A proposal ends exactly one way: applied (its [Result]), certainly not
    applied ([*NotAppliedError]) or unknown ([*AmbiguousError]).

# The log writer

Raft runs with AsyncStorageWrites. Messages raft allows before persistence
(a leader's appends to its followers, say) are sent at once. Each
MsgStorageAppend (entries, HardState, snapshot) goes to the log writer,
which drains everything queued into one engine batch and commits it without
waiting for the fsync; the syncer waits for it and delivers, while the
writer stages and commits the next batch. So fsyncs per append fall as load
rises. A batch that ingests a snapshot or destroys a replica is not
pipelined. The log writer also performs, in queue order, log truncations
and the deletion of destroyed replicas.

# Applying and proposals

Committed entries are applied on the worker: the state machine writes their
effects into a batch, and the host adds the applied state (index, term,
configuration) to the same batch, committed without fsync: the log is the
durable record, replayed from the applied index after a crash. A proposal
carries a random 64-bit ID and is matched, when applied, by index, term and
ID. An entry a deposed leader appended beyond the new leader's log stays
ambiguous until something else is applied at its index: a later leader
holding it could still commit it.

# Heartbeats, quiescence and liveness

Raft's heartbeats and their responses do not travel as raft messages: each
becomes a compact [Heartbeat] queued for its peer node, and the queues are
flushed once per tick, so a node pair exchanges one batch of heartbeats per
tick whatever the number of groups (a beat a read waits for goes at once).
A lost batch is, for each group in it, exactly a lost heartbeat.

A group with nothing to do stops ticking and heartbeating: a leader whose
followers are all caught up quiesces, and tells them with quiesce beats;
a follower that agrees quiesces too. Anything but heartbeats wakes a group.
Every host pings each peer once per heartbeat interval and considers a peer
down after an election timeout of silence; the groups with a replica there
wake, so that the followers of a dead leader elect another. Idle groups thus
cost no ticks and no messages, and a host's work grows with its active
groups only.

# Reads

[Host.ReadIndex] returns once the leader confirmed through a quorum that it
led at a commit index and the local replica applied it; then the state
machine may be read. Reads arriving while a round is in flight join the
next (a group may be allowed more rounds at once: Config.ReadRounds).
Followers and learners forward to the leader.

# Snapshots

When raft on a leader needs one, the worker takes an engine snapshot that
matches the applied state exactly, and a sender streams the group's
replicated state and its state machine's spans through
[Transport.SendSnapshot]. The receiver validates the header, stages the
data, and steps the snapshot into raft; only if raft accepts it does the log
writer ingest the data (atomically) and record it in the raft log state.

# Replica lifecycle and splits

A message from a leader or candidate (not a heartbeat) for a group this
host lacks, addressed to a replica here, creates an empty, uninitialized
replica: it may vote, never campaigns, and gets its data by snapshot (a
bootstrapped log starts after index 10, so the log can never catch it up).
Messages create at most Config.MaxUninitializedReplicas of them; one that
hears nothing for Config.UninitializedReplicaTimeout is collected, keeping
its HardState so that a re-created replica remembers its vote. A
heartbeat for a group not here is answered without read context, so a
leader whose first append was lost sends another. A replica that applies a
configuration without itself is destroyed: its pending work fails, and the
log writer deletes its data after its queued writes and writes the
tombstone. A membership change the state machine rejects is applied by raft
as no change.

A state machine splits its group by returning [Result].NewGroup from Apply:
the new group's initial raft state is written in the same (synced) batch,
and the group starts once it is committed, replacing an uninitialized
replica of it made earlier by messages.

# Input from the network

[Host.HandleBatch] steps only the message types peers send, from a valid
replica on the sending node to a valid replica, and nothing from a batch
claiming to come from this node; it drops raft's local messages (a forged
storage response could fake durability) and snapshots, which have their own
stream. etcd raft trusts its peers and panics on some messages no correct
peer sends (a heartbeat committing past the log, an append with
non-contiguous entries, a vote of term 0, a read request with a term, a
read acknowledgement raft never asked for): a group's worker checks every
peer message against what it tracks of its replica (validate.go) before
raft steps it, in O(1), plus O(entries) for an append. (A heartbeat whose
commit lies past the end of an append of the current term stepped earlier
in the same pass, which may have truncated the log, is stepped with its
commit lowered to that end rather than dropped.) Snapshot headers get the
same term checks (HandleSnapshot). Every dropped message is counted by
reason (flotilla_raft_messages_dropped_total).
Decoders return errors, never panic. Peers are not authenticated here: a
forger who can reach the raft port and names a group's leader and term can
still disrupt or rewrite that group's uncommitted log (what stops that is
the transport's TLS); what this layer guarantees is that no message panics
a host or creates replicas without bound.

# Log truncation

Truncation is a replicated internal command: on a quiet tick, a leader
whose log is long enough proposes to truncate up to what every live
follower and in-flight snapshot no longer needs, and every replica applying
the command hands the deletion to the log writer, after the applied state
that allows it.
*/
package multiraft
