// Copyright 2026 The Flotilla Authors. All rights reserved.

package server

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/flotilladb/flotilla"
	"github.com/flotilladb/flotilla/engine"
	"github.com/flotilladb/flotilla/internal/stopper"
	"github.com/flotilladb/flotilla/multiraft"
	"github.com/flotilladb/flotilla/placement"
	"github.com/flotilladb/flotilla/router"
	"github.com/flotilladb/flotilla/rpc"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"github.com/flotilladb/flotilla/rpc/raftrpc"
	"github.com/flotilladb/flotilla/shard"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// Version is the running binary's version; the flotilla command sets it.
var Version = "dev"

// nodeState is where a node is in its life.
type nodeState int

const (
	// stateWaiting: not part of a cluster; waiting for init or to join.
	stateWaiting nodeState = iota
	// stateRunning: a member serving its replicas.
	stateRunning
	// stateStopped: closed.
	stateStopped
)

func (s nodeState) String() string {
	return [...]string{"waiting", "running", "stopped"}[s]
}

// Node is a Flotilla node running in this process: its store, its raft
// groups, a gRPC server for peers and clients, and an HTTP admin server.
// It implements KV: requests go through its gateway, which serves them from
// local replicas or routes them to the node that can.
//
// Locks, in the order they are acquired (a goroutine holding one may take
// only those after it):
//
//	memberMu → gate (shared) → allocMu → mu
//
// memberMu and allocMu serialize slow work (becoming a member, allocating
// IDs through the placement group) and are held across I/O and raft
// proposals; mu guards only in-memory fields and is never held across I/O,
// a proposal or a call into the host. No raft worker takes memberMu,
// allocMu or the gate, so waiting for a proposal under them cannot
// deadlock; the placement group's worker does take mu (metaChanged).
// placement.Driver, shard.Store and the gateway's router have locks of
// their own, which come after all of these: nothing the node runs under
// them (the build functions it gives Driver.AdminOperator) takes a lock of
// the node's.
type Node struct {
	// KV is the node's KV API over its gateway (flotilla.NewKV); Close is
	// the node's own.
	flotilla.KV

	// The fields up to gw are set by Open before any goroutine of the node
	// starts, and never change; after a failed Open some are nil, which
	// Close allows for.
	cfg       Config // with defaults filled in
	log       *slog.Logger
	eng       *engine.Engine
	metrics   *metrics.Set
	pool      *rpc.Pool
	transport *raftrpc.Transport
	store     *shard.Store
	gw        *gateway
	// driver is what this node observes while it leads the placement
	// group: any node may lead it, so every node has one, and it is
	// meaningful only on the leader. It is safe for concurrent use (its
	// own lock). driverTerm is the placement group's term it was last
	// reset for: it only grows (syncDriver), so the driver is reset once
	// per term this node leads, and never with an older term's view.
	driver     *placement.Driver
	driverTerm atomic.Uint64
	// reportedDriverTerm is the driver term the last answer to this
	// node's range reports came from; until legacyReportsUntil the
	// placement leader is taken for an older build that does not take
	// batched reports (heartbeat loop only).
	reportedDriverTerm uint64
	legacyReportsUntil time.Time
	// allocMu serializes the allocation of replica sequence numbers and
	// range IDs for the driver (ensureAlloc), so that callers racing on
	// one shortage (range heartbeats, admin requests, the balance round)
	// propose one AllocIDs, not one each. It is held across that proposal,
	// which its context bounds.
	allocMu sync.Mutex
	// executing holds the groups (multiraft.GroupID → struct{}) an
	// operator step runs for: executeStep adds one before it starts the
	// step's goroutine and the goroutine removes it, so at most one step
	// runs per range; the driver hands a step out again while it is due.
	executing sync.Map
	// placementView is the driver's view while this node leads the
	// placement group, for /status and /metrics; nil otherwise. Only the
	// heartbeat loop stores it (scheduleBalance), once per
	// HeartbeatInterval; readers may keep the pointer (it is replaced,
	// never modified).
	placementView atomic.Pointer[flotillapb.PlacementView]
	// oracle is the node's client of the revision oracle: every caller on
	// this node takes revisions from it (Revision). oracleSrv serves the
	// oracle while this node leads the placement group (oracle.go).
	oracle    *oracleClient
	oracleSrv *oracleServer

	// Set by Open and never changed; Close closes the listeners and
	// servers.
	lis        net.Listener
	certs      *rpc.NodeCerts // nil on an insecure node
	grpcServer *grpc.Server
	httpLis    net.Listener
	httpServer *http.Server
	addr       string // advertised gRPC address
	httpAddr   string // HTTP address listened on ("" when off)
	started    time.Time
	// joinToken identifies this store to the placement group across
	// retried joins and address changes (loadJoinToken). It goes from ""
	// to a token at most once, with memberMu held (ensureJoinToken), before
	// the node joins or founds a cluster; from then on it is read without
	// a lock.
	joinToken string
	// labels are Config.Labels, sorted by key; never changed after Open.
	labels []*flotillapb.StoreLabel
	// announced is the last announcement of this node's address and labels
	// (maintainMembership), and whether a warning that it did not take was
	// logged. Only the maintenance loop uses it.
	announced struct {
		key    string
		at     time.Time
		warned bool
	}

	// disk is the node's watch on its store's disk (disk.go).
	disk diskWatch

	// self is the node's ID once it runs as a member (startMember), 0
	// before; it never changes after. The gateway reads it on every
	// attempt without taking mu.
	self atomic.Uint64

	// ready is closed when the node becomes a running member, once, by
	// the startMember that moved the state from waiting to running.
	ready chan struct{}
	// stopCtx ends when Close starts; background goroutines and forwarded
	// calls watch it.
	stopCtx context.Context
	stop    context.CancelFunc
	// stopper owns every long-lived goroutine of the node (the servers, the
	// join, maintenance and heartbeat loops, operator steps): Close waits
	// for them all.
	stopper *stopper.Stopper

	// memberMu serializes becoming a member (init, join, creating the join
	// token) and Close's move to stopped, so that no init or join starts a
	// host once Close has begun. It is held across I/O (asking the --join
	// peers, writing the ident, starting the host): never take it while
	// holding mu or the gate.
	memberMu sync.Mutex
	mu       struct {
		sync.Mutex
		// state goes waiting → running → stopped and never back:
		// startMember moves it to running (with memberMu held, and only
		// from waiting), Close to stopped.
		state nodeState
		// initializing: an Init is asking the --join peers whether a
		// cluster exists; Status reports it so that peers refuse to init.
		initializing bool
		// ident is the store's cluster and node ID. It is set before the
		// host starts (its state machines need the node's own ID), so it may
		// be set while the state is still waiting; it is the ident on disk
		// once the state is running.
		ident *flotillapb.StoreIdent
		// host is set with state running and never replaced; Close stops
		// it.
		host *multiraft.Host
		// meta is this node's replica of the placement group's state
		// machine, set when the host creates that replica (newStateMachine);
		// nil while the node holds none.
		meta *placement.Meta
		// directory is the cluster's nodes as last learned (from the
		// placement group's state if this node holds a replica of it, else
		// from a join response or a peer's status), without join tokens.
		// Entries are added and updated, never removed; the store keeps a
		// copy (saveNodes) for restarts.
		directory map[multiraft.NodeID]*flotillapb.NodeDescriptor
	}
	// gate keeps Close from closing the store under a request: requests
	// made in this process (the KV API, the admin HTTP handlers, the
	// placement and status handlers) hold it shared; Close takes it
	// exclusively once the gRPC server has drained its handlers and the
	// host has stopped, and sets closed, so later requests fail at once.
	// A goroutine must not take it shared twice: a Close waiting for it in
	// between would deadlock both (hence placementRequestEntered and
	// lookupRange).
	gate struct {
		sync.RWMutex
		closed bool
	}
	closeOnce sync.Once
	closeErr  error
}

// enter admits a request unless the node is closing; exit must follow.
func (n *Node) enter() bool {
	n.gate.RLock()
	if n.gate.closed {
		n.gate.RUnlock()
		return false
	}
	return true
}

func (n *Node) exit() { n.gate.RUnlock() }

var _ flotilla.KV = (*Node)(nil)

// Open starts a node in this process over cfg.Dir. A store that is part of a
// cluster rejoins it; a new store waits to be initialized (Node.Init or
// `flotilla init`), joins the cluster named by cfg.Join, or with
// cfg.Bootstrap creates a new cluster. Open returns once the node listens;
// use WaitReady to wait until it is a running member. Close stops it.
func Open(ctx context.Context, cfg Config) (_ *Node, err error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := &Node{
		cfg:     cfg,
		log:     cfg.Logger,
		metrics: metrics.NewSet(),
		started: time.Now(),
		ready:   make(chan struct{}),
		stopper: stopper.New(),
	}
	n.disk.failed = make(chan struct{})
	n.stopCtx, n.stop = context.WithCancel(context.Background())
	n.mu.state = stateWaiting
	n.mu.directory = map[multiraft.NodeID]*flotillapb.NodeDescriptor{}
	defer func() {
		if err != nil {
			_ = n.Close()
		}
	}()

	if cfg.CertsDir != "" {
		if n.certs, err = rpc.LoadNodeCerts(cfg.CertsDir); err != nil {
			return nil, fmt.Errorf("flotilla: %w", err)
		}
	}
	eopts := engine.Options{Dir: cfg.Dir, Metrics: n.metrics, Logger: cfg.Logger}
	if cfg.Testing != nil {
		eopts.DisableSync = cfg.Testing.DisableSync
		eopts.FS = cfg.Testing.FS
	}
	if n.eng, err = engine.Open(eopts); err != nil {
		return nil, fmt.Errorf("flotilla: opening store %s: %w", cfg.Dir, err)
	}
	if n.lis, err = net.Listen("tcp", cfg.ListenAddr); err != nil {
		return nil, fmt.Errorf("flotilla: listen %s: %w", cfg.ListenAddr, err)
	}
	n.addr = cfg.AdvertiseAddr
	if n.addr == "" {
		n.addr = n.lis.Addr().String()
	}
	if cfg.HTTPAddr != "off" {
		if n.httpLis, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
			return nil, fmt.Errorf("flotilla: listen (HTTP) %s: %w", cfg.HTTPAddr, err)
		}
		n.httpAddr = n.httpLis.Addr().String()
	}
	if err := n.checkListeners(); err != nil {
		return nil, err
	}
	pcfg := rpc.PoolConfig{DialOverrides: cfg.DialOverrides, Logger: cfg.Logger}
	gopts := append(rpc.ServerOptions(), grpc.WaitForHandlers(true))
	if n.certs != nil {
		pcfg.TLS = n.certs.PeerTLS()
		gopts = append(gopts, rpc.SecureServerOptions(n.certs)...)
		if n.httpLis != nil {
			n.httpLis = tls.NewListener(n.httpLis, n.certs.HTTPTLS())
		}
	} else {
		n.log.Warn("running INSECURE: no certificates (--certs-dir), so anyone who reaches this node's ports can read and write every key and send it raft messages; it listens on loopback only unless --insecure",
			"addr", n.lis.Addr().String())
	}

	n.pool = rpc.NewPool(pcfg)
	if n.transport, err = raftrpc.NewTransport(raftrpc.TransportConfig{Pool: n.pool, Metrics: n.metrics, Logger: cfg.Logger}); err != nil {
		return nil, err
	}
	oracleMetrics := newOracleMetrics(n.metrics)
	n.oracle = newOracleClient(n, oracleMetrics)
	scfg := shard.Config{Engine: n.eng, Revisions: n.oracle, MaxValueSize: cfg.MaxValueSize, MaxTxnOps: cfg.MaxTxnOps, Logger: cfg.Logger,
		AdmitWrite: n.admitWrite, CloseAtLeader: n.closeAtLeader,
		OnFollowerRead: n.metrics.NewCounter("flotilla_kv_follower_reads_total").Inc}
	scfg.Testing = cfg.Testing.shardKnobs()
	if n.store, err = shard.NewStore(scfg); err != nil {
		return nil, err
	}
	if n.gw, err = newGateway(n); err != nil {
		return nil, err
	}
	n.driver = placement.NewDriver(placement.DriverConfig{
		LivenessWindow: cfg.LivenessWindow, StoreDownTimeout: cfg.StoreDownTimeout,
		ReplicationFactor: cfg.ReplicationFactor, PlacementReplicationFactor: cfg.PlacementReplicationFactor,
	})
	var window int64
	skipCheck := false
	if cfg.Testing != nil {
		window, skipCheck = cfg.Testing.RevisionWindow, cfg.Testing.UnsafeOracleSkipLeadershipCheck
	}
	if n.oracleSrv, err = newOracleServer(n, oracleMetrics, window, skipCheck); err != nil {
		return nil, fmt.Errorf("flotilla: %w", err)
	}
	n.KV = flotilla.NewKVInZone(n.gw, n.Close, cfg.Labels[router.ZoneLabel])
	n.registerPlacementMetrics()
	n.registerDiskMetrics()

	// WaitForHandlers (in gopts): Close must not close the store under a
	// running request.
	n.grpcServer = grpc.NewServer(gopts...)
	n.transport.Register(n.grpcServer)
	rpc.RegisterKV(n.grpcServer, n.gw)
	rpc.RegisterNode(n.grpcServer, (*nodeService)(n))
	rpc.RegisterPlacement(n.grpcServer, (*placementService)(n))
	if n.joinToken, err = loadJoinToken(n.eng, false); err != nil {
		return nil, err
	}
	if n.labels, err = flotillapb.NormalizeLabels(cfg.Labels); err != nil {
		return nil, fmt.Errorf("flotilla: %w", err) // Validate refused it already
	}
	// Become a member (or not) before serving, so that no request, Init
	// in particular, sees a half-started node.
	ident, err := readIdent(n.eng)
	if err != nil {
		return nil, err
	}
	switch {
	case ident != nil:
		nodes, err := loadNodes(n.eng)
		if err != nil {
			return nil, err
		}
		if err := n.becomeMember(ident, nodes); err != nil {
			return nil, err
		}
	case cfg.Bootstrap && len(cfg.Join) == 0:
		if _, err := n.initCluster(); err != nil {
			return nil, err
		}
	case len(cfg.Join) > 0:
		n.stopper.RunWorker(n.joinLoop)
	default:
		n.log.Info("node is not part of a cluster: waiting for `flotilla init` or for other nodes to join it", "addr", n.addr)
	}
	n.stopper.RunWorker(func() {
		if err := n.grpcServer.Serve(n.lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			n.log.Error("gRPC server failed", "err", err)
		}
	})
	if n.httpLis != nil {
		n.httpServer = &http.Server{Handler: n.adminHandler(), ReadHeaderTimeout: 10 * time.Second,
			// Failed TLS handshakes and the like go to the node's log.
			ErrorLog: slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug)}
		n.stopper.RunWorker(func() {
			if err := n.httpServer.Serve(n.httpLis); err != nil && !errors.Is(err, http.ErrServerClosed) {
				n.log.Error("HTTP server failed", "err", err)
			}
		})
	}

	n.stopper.RunWorker(n.oracleSrv.run)
	n.stopper.RunWorker(n.oracle.run)
	n.stopper.RunWorker(n.maintenanceLoop)
	n.stopper.RunWorker(n.heartbeatLoop)
	n.stopper.RunWorker(n.diskLoop)
	n.stopper.RunWorker(n.compactionLoop)
	return n, nil
}

// checkListeners checks, once the listeners are bound: on a secure node,
// that the node certificate covers the advertised host (peers and clients
// check it when they dial); on an insecure one, that both listeners are on
// loopback (Config.Validate checked the names; "localhost" could resolve
// elsewhere) unless Insecure.
func (n *Node) checkListeners() error {
	if n.certs != nil {
		host, _, err := net.SplitHostPort(n.addr)
		if err != nil {
			return fmt.Errorf("flotilla: advertised address %q: %w", n.addr, err)
		}
		if err := n.certs.VerifyHostname(host); err != nil {
			return fmt.Errorf("flotilla: %s: %w", filepath.Join(n.cfg.CertsDir, rpc.NodeCertFile), err)
		}
		if left := time.Until(n.certs.NotAfter); left < 30*24*time.Hour {
			n.log.Warn("the node certificate expires soon: make a new one (docs/SECURITY.md, rotation)", "expires", n.certs.NotAfter, "in", left.Round(time.Hour))
		}
		return nil
	}
	if n.cfg.Insecure {
		return nil
	}
	for _, lis := range []net.Listener{n.lis, n.httpLis} {
		if lis == nil {
			continue
		}
		if a, ok := lis.Addr().(*net.TCPAddr); ok && !a.IP.IsLoopback() {
			return fmt.Errorf("flotilla: listening on %s, which is not loopback, and an insecure node listens only on loopback: give it certificates (--certs-dir) or, to accept the risk, --insecure", a)
		}
	}
	return nil
}

// Dir returns the store's directory.
func (n *Node) Dir() string { return n.cfg.Dir }

// Addr returns the advertised gRPC address.
func (n *Node) Addr() string { return n.addr }

// HTTPAddr returns the admin HTTP address, "" if it is off.
func (n *Node) HTTPAddr() string { return n.httpAddr }

// NodeID returns the node's ID, 0 while it is not part of a cluster.
func (n *Node) NodeID() uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.mu.ident.GetNodeId()
}

// ClusterID returns the cluster's ID, "" while the node is not part of one.
func (n *Node) ClusterID() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.mu.ident.GetClusterId()
}

// WaitReady waits until the node is a running member of a cluster.
func (n *Node) WaitReady(ctx context.Context) error {
	select {
	case <-n.ready:
		return nil
	case <-n.stopCtx.Done():
		return flotilla.ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Init makes this node create a new cluster, as `flotilla init` does. It
// fails with an error matching rpc.ErrAlreadyInitialized on a node that is
// already part of a cluster. With splitKeys the keyspace starts pre-split:
// one range ends at each key.
func (n *Node) Init(ctx context.Context, splitKeys ...[]byte) (clusterID string, err error) {
	ident, err := n.initChecked(ctx, splitKeys)
	if fe := (*flotillapb.Error)(nil); errors.As(err, &fe) {
		return "", &flotilla.Error{Op: "init", Detail: fe}
	}
	if err != nil {
		return "", err
	}
	return ident.GetClusterId(), nil
}

// initChecked is Init: it creates the cluster unless a --join peer belongs
// to one or is itself being initialized. While it asks, this node reports
// itself as initializing, so that two nodes told to init at once both
// refuse rather than found two clusters.
func (n *Node) initChecked(ctx context.Context, splitKeys [][]byte) (*flotillapb.StoreIdent, error) {
	splitKeys, err := checkSplitKeys(splitKeys)
	if err != nil {
		return nil, err
	}
	n.memberMu.Lock()
	defer n.memberMu.Unlock()
	n.mu.Lock()
	state := n.mu.state
	if state == stateWaiting {
		n.mu.initializing = true
	}
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		n.mu.initializing = false
		n.mu.Unlock()
	}()
	if state == stateWaiting {
		if err := n.checkPeersUninitialized(ctx); err != nil {
			return nil, err
		}
	}
	return n.initClusterLocked(splitKeys)
}

// running returns the node's host and store if it is a running member.
func (n *Node) running() (*multiraft.Host, *placement.Meta, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.mu.state != stateRunning {
		return nil, nil, false
	}
	return n.mu.host, n.mu.meta, true
}

func readIdent(eng *engine.Engine) (*flotillapb.StoreIdent, error) {
	v, err := eng.Get(engine.StoreIdentKey())
	if errors.Is(err, engine.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	ident := &flotillapb.StoreIdent{}
	if err := proto.Unmarshal(v, ident); err != nil || ident.GetNodeId() == 0 || ident.GetClusterId() == "" {
		return nil, fmt.Errorf("flotilla: store ident is corrupt (%v)", err)
	}
	return ident, nil
}

func writeIdent(eng *engine.Engine, ident *flotillapb.StoreIdent) error {
	v, err := proto.Marshal(ident)
	if err != nil {
		return err
	}
	b := eng.NewBatch()
	defer b.Close()
	if err := b.Set(engine.StoreIdentKey(), v); err != nil {
		return err
	}
	return b.Commit(true)
}

// loadJoinToken returns the store's join token ("" if it has none), creating
// it if create: it must survive restarts so that a join whose response was
// lost gets the same node ID when retried. It is created only when the
// store first joins or founds a cluster, so that copies of an unused store
// do not share it.
func loadJoinToken(eng *engine.Engine, create bool) (string, error) {
	v, err := eng.Get(engine.StoreJoinTokenKey())
	if err == nil && len(v) > 0 {
		return string(v), nil
	}
	if err != nil && !errors.Is(err, engine.ErrNotFound) {
		return "", err
	}
	if !create {
		return "", nil
	}
	tok := randomHex(16)
	b := eng.NewBatch()
	defer b.Close()
	if err := b.Set(engine.StoreJoinTokenKey(), []byte(tok)); err != nil {
		return "", err
	}
	return tok, b.Commit(true)
}

// loadNodes returns the cluster's nodes as last saved by saveNodes.
func loadNodes(eng *engine.Engine) ([]*flotillapb.NodeDescriptor, error) {
	v, err := eng.Get(engine.StoreNodesKey())
	if errors.Is(err, engine.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var m flotillapb.ClusterMeta
	if err := proto.Unmarshal(v, &m); err != nil {
		return nil, fmt.Errorf("flotilla: the store's node list is corrupt: %w", err)
	}
	return m.GetNodes(), nil
}

// saveNodes keeps the node directory in the store, so that a node holding
// no replica of the placement group still knows its peers after a restart.
// It is a cache: it is not synced.
func saveNodes(eng *engine.Engine, nodes []*flotillapb.NodeDescriptor) error {
	v, err := proto.Marshal(&flotillapb.ClusterMeta{Nodes: nodes})
	if err != nil {
		return err
	}
	b := eng.NewBatch()
	defer b.Close()
	if err := b.Set(engine.StoreNodesKey(), v); err != nil {
		return err
	}
	return b.Commit(false)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// newHost starts the multiraft host as node id. The host loads the store's
// groups at once, calling newStateMachine for each.
func (n *Node) newHost(id multiraft.NodeID) (*multiraft.Host, error) {
	return multiraft.NewHost(multiraft.Config{
		NodeID:          id,
		Engine:          n.eng,
		Transport:       n.transport,
		NewStateMachine: n.newStateMachine,
		TickInterval:    n.cfg.TickInterval,
		ReadRounds:      readRounds,
		Metrics:         n.metrics,
		Logger:          n.log,
		Testing:         n.hostKnobs(),
	})
}

// readRounds is the host's ReadRounds: the placement group runs the
// oracle's leadership checks, oracleLeaderRounds at once; a range's reads
// share one round at a time (a second round at once cost a busy range more
// in heartbeats than it saved in waiting).
func readRounds(g multiraft.GroupID) int {
	if g == placement.GroupID {
		return oracleLeaderRounds
	}
	return 1
}

// hostKnobs returns the host's testing knobs from the node's, nil in
// production.
func (n *Node) hostKnobs() *multiraft.TestingKnobs {
	if n.cfg.Testing == nil || !n.cfg.Testing.DisableCheckQuorum {
		return nil
	}
	return &multiraft.TestingKnobs{DisableCheckQuorum: true}
}

// newStateMachine is the host's state machine factory: the placement group
// gets the cluster metadata, every other group is a key range. The host
// calls it while it loads its groups and, later, on a raft worker when a
// message or a split creates a replica; it takes mu.
func (n *Node) newStateMachine(group multiraft.GroupID) (multiraft.StateMachine, error) {
	if group == placement.GroupID {
		m, err := placement.NewMeta(n.eng, n.metaChanged)
		if err != nil {
			return nil, err
		}
		n.mu.Lock()
		n.mu.meta = m
		n.mu.Unlock()
		n.metaChanged(m.State())
		return m, nil
	}
	return n.store.NewStateMachine(group)
}

// metaChanged learns the nodes' addresses from the placement group's state
// (on the group's worker, after every apply that changed it: so mu must
// never be held while waiting for a placement-group proposal).
func (n *Node) metaChanged(st *flotillapb.ClusterMeta) {
	n.learnNodes(st.GetNodes())
}

// learnNodes merges nodes into the directory, saves it if it changed, and
// gives the transport the other nodes' addresses. It takes mu, and does the
// I/O after releasing it.
func (n *Node) learnNodes(nodes []*flotillapb.NodeDescriptor) {
	nodes = withoutTokens(nodes) // only the placement group keeps tokens
	n.mu.Lock()
	self := multiraft.NodeID(n.mu.ident.GetNodeId())
	changed := false
	for _, d := range nodes {
		id := multiraft.NodeID(d.GetNodeId())
		if old := n.mu.directory[id]; old == nil || !proto.Equal(old, d) {
			n.mu.directory[id] = d
			changed = true
		}
	}
	n.mu.Unlock()
	if changed {
		if err := saveNodes(n.eng, n.directory()); err != nil {
			n.log.Warn("saving the node directory", "err", err)
		}
	}
	for _, d := range nodes {
		if id := multiraft.NodeID(d.GetNodeId()); id != self && d.GetAddress() != "" {
			n.transport.SetAddress(id, d.GetAddress())
		}
	}
}

// directory returns the known nodes sorted by ID.
func (n *Node) directory() []*flotillapb.NodeDescriptor {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]*flotillapb.NodeDescriptor, 0, len(n.mu.directory))
	for _, d := range n.mu.directory {
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b *flotillapb.NodeDescriptor) int { return cmp.Compare(a.GetNodeId(), b.GetNodeId()) })
	return out
}

// becomeMember starts the node's raft host as a member of ident's cluster.
// nodes, if given, are the cluster's nodes as a join response listed them.
func (n *Node) becomeMember(ident *flotillapb.StoreIdent, nodes []*flotillapb.NodeDescriptor) error {
	n.mu.Lock()
	n.mu.ident = ident
	n.mu.Unlock()
	n.learnNodes(nodes)
	host, err := n.newHost(multiraft.NodeID(ident.GetNodeId()))
	if err != nil {
		return err
	}
	return n.startMember(ident, host)
}

// startMember makes the node a running member over host, a host started
// as ident's node: it starts the raft transport and hands the host to the
// store, then moves the state from waiting to running and closes ready. It
// fails, and stops host, if the state is no longer waiting (Close began).
// The caller holds memberMu.
func (n *Node) startMember(ident *flotillapb.StoreIdent, host *multiraft.Host) error {
	if err := n.transport.Start(multiraft.NodeID(ident.GetNodeId()), ident.GetClusterId(), n.addr, host); err != nil {
		host.Stop()
		return err
	}
	n.store.SetHost(host)
	n.mu.Lock()
	if n.mu.state != stateWaiting {
		n.mu.Unlock()
		host.Stop()
		return fmt.Errorf("flotilla: node is %s, cannot start as a member", n.mu.state)
	}
	n.mu.ident = ident
	n.mu.host = host
	n.mu.state = stateRunning
	n.mu.Unlock()
	n.self.Store(ident.GetNodeId())
	close(n.ready)
	n.log.Info("node running", "node", ident.GetNodeId(), "cluster", ident.GetClusterId(), "addr", n.addr, "http", n.httpAddr)
	return nil
}

// maxSplitKeys bounds the ranges a cluster can be created with.
const maxSplitKeys = 20000

// checkSplitKeys returns the split keys of an init sorted, or an
// InvalidArgument error: each non-empty, at most flotillapb.MaxKeySize bytes,
// no two equal, at most maxSplitKeys.
func checkSplitKeys(keys [][]byte) ([][]byte, error) {
	if len(keys) > maxSplitKeys {
		return nil, invalidArgument("split_keys", fmt.Sprintf("%d split keys; at most %d", len(keys), maxSplitKeys))
	}
	out := make([][]byte, len(keys))
	for i, k := range keys {
		if len(k) == 0 || len(k) > flotillapb.MaxKeySize {
			return nil, invalidArgument("split_keys", fmt.Sprintf("split key %d has %d bytes; want 1 to %d", i+1, len(k), flotillapb.MaxKeySize))
		}
		out[i] = bytes.Clone(k)
	}
	slices.SortFunc(out, bytes.Compare)
	for i := 1; i < len(out); i++ {
		if bytes.Equal(out[i-1], out[i]) {
			return nil, invalidArgument("split_keys", fmt.Sprintf("split key %q given twice", out[i]))
		}
	}
	return out, nil
}

// initCluster creates a new cluster with this node as node 1: the placement
// group and the first range, each with one replica here, then the store's
// ident. A crash before the ident is written leaves groups that a second
// init finds and keeps.
func (n *Node) initCluster() (*flotillapb.StoreIdent, error) {
	n.memberMu.Lock()
	defer n.memberMu.Unlock()
	return n.initClusterLocked(nil)
}

// initClusterLocked is initCluster with memberMu held, pre-split at
// splitKeys (checked by checkSplitKeys).
func (n *Node) initClusterLocked(splitKeys [][]byte) (_ *flotillapb.StoreIdent, err error) {
	n.mu.Lock()
	state := n.mu.state
	n.mu.Unlock()
	switch state {
	case stateRunning:
		return nil, fmt.Errorf("%w (cluster %s)", rpc.ErrAlreadyInitialized, n.ClusterID())
	case stateStopped:
		return nil, flotilla.ErrClosed
	}
	if err := n.ensureJoinToken(); err != nil {
		return nil, err
	}
	const first multiraft.NodeID = 1
	ident := &flotillapb.StoreIdent{ClusterId: newClusterID(), NodeId: uint64(first)}
	// The state machines the host creates read the node's own ID: publish
	// the ident before the host starts, and take it back if the init
	// fails, so that a node still waiting reports no cluster (a peer's
	// init would otherwise take it for a member of one). A published ident
	// is never modified: a corrected one replaces it.
	n.mu.Lock()
	n.mu.ident = ident
	n.mu.Unlock()
	defer func() {
		if err != nil {
			n.mu.Lock()
			if n.mu.state == stateWaiting {
				n.mu.ident = nil
			}
			n.mu.Unlock()
		}
	}()
	host, err := n.newHost(first)
	if err != nil {
		return nil, err
	}
	replicas := []multiraft.Replica{{ID: multiraft.MakeReplicaID(first, 1)}}
	self := &flotillapb.NodeDescriptor{NodeId: uint64(first), Address: n.addr, HttpAddress: n.httpAddr, JoinToken: n.joinToken, Labels: n.labels}
	// The first range covers the keyspace, or, pre-split, up to the first
	// split key; one range follows from each split key.
	bounds := append(append([][]byte{nil}, splitKeys...), nil)
	var descs []*flotillapb.RangeDescriptor
	for i := range len(bounds) - 1 {
		descs = append(descs, &flotillapb.RangeDescriptor{
			RangeId:  uint64(placement.FirstRangeID) + uint64(i),
			StartKey: bounds[i], EndKey: bounds[i+1],
			Epoch:    &flotillapb.RangeEpoch{ConfVer: 1, Version: 1},
			Replicas: []*flotillapb.ReplicaDescriptor{{StoreId: uint64(first), ReplicaId: uint64(replicas[0].ID)}},
		})
	}
	err = host.BootstrapWith(placement.GroupID, replicas, func(b *engine.Batch) error {
		return placement.WriteInitialMeta(b, ident.GetClusterId(), self, descs...)
	})
	for _, desc := range descs {
		if err != nil && !errors.Is(err, multiraft.ErrGroupExists) {
			break
		}
		err = host.BootstrapWith(multiraft.GroupID(desc.GetRangeId()), replicas, func(b *engine.Batch) error {
			return shard.WriteInitialState(b, desc)
		})
	}
	if err != nil && !errors.Is(err, multiraft.ErrGroupExists) {
		host.Stop()
		return nil, fmt.Errorf("flotilla: bootstrapping the cluster: %w", err)
	}
	// After a crash between bootstrap and ident, the groups name the
	// cluster.
	if st, err := placement.ReadMeta(n.eng); err == nil && st != nil && st.GetClusterId() != ident.GetClusterId() {
		ident = &flotillapb.StoreIdent{ClusterId: st.GetClusterId(), NodeId: ident.GetNodeId()}
		n.mu.Lock()
		n.mu.ident = ident
		n.mu.Unlock()
	}
	if err := writeIdent(n.eng, ident); err != nil {
		host.Stop()
		return nil, err
	}
	if err := n.startMember(ident, host); err != nil {
		return nil, err
	}
	n.log.Info("cluster initialized", "cluster", ident.GetClusterId())
	return ident, nil
}

// ensureJoinToken creates the store's join token if it has none yet
// (memberMu held).
func (n *Node) ensureJoinToken() error {
	if n.joinToken != "" {
		return nil
	}
	tok, err := loadJoinToken(n.eng, true)
	if err != nil {
		return err
	}
	n.joinToken = tok
	return nil
}

func newClusterID() string {
	b := randomHex(16)
	return b[0:8] + "-" + b[8:12] + "-" + b[12:16] + "-" + b[16:20] + "-" + b[20:32]
}

// joinLoop asks the join addresses, in turn, to admit this node until one
// does, the node is initialized some other way, or it stops. It backs off
// from 100 ms to 2 s between attempts: the cluster may not exist yet (the
// nodes are started before `flotilla init`), so it keeps asking, but the
// peers it asks must not be flooded; it logs at most every 5 s.
func (n *Node) joinLoop() {
	backoff := 100 * time.Millisecond
	var lastLog time.Time
	for attempt := 0; ; attempt++ {
		if _, _, ok := n.running(); ok {
			return
		}
		addr := n.cfg.Join[attempt%len(n.cfg.Join)]
		err := n.joinOnce(addr)
		if err == nil {
			return
		}
		if time.Since(lastLog) > 5*time.Second {
			n.log.Info("joining the cluster", "via", addr, "err", err)
			lastLog = time.Now()
		}
		select {
		case <-n.stopCtx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// joinOnce asks the node at addr to admit this one. The request is sent
// without memberMu (it may wait for the placement group up to 5 s); the
// answer is acted on with it held, unless the node became a member, or
// began to close, meanwhile. The ident is written before the host starts:
// a crash in between restarts the node as that member, and the join token
// makes a retried join get the same node ID anyway.
func (n *Node) joinOnce(addr string) error {
	if addr == n.addr {
		return errors.New("not joining through this node itself")
	}
	n.memberMu.Lock()
	err := n.ensureJoinToken()
	n.memberMu.Unlock()
	if err != nil {
		return err
	}
	conn, err := n.pool.Conn(addr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(n.stopCtx, 5*time.Second)
	defer cancel()
	resp, err := flotillapb.NewNodeClient(conn).Join(ctx, &flotillapb.JoinRequest{
		Address: n.addr, HttpAddress: n.httpAddr, JoinToken: n.joinToken, Labels: n.labels,
	})
	if err != nil {
		return err
	}
	n.memberMu.Lock()
	defer n.memberMu.Unlock()
	if _, _, ok := n.running(); ok || n.stopCtx.Err() != nil {
		return nil
	}
	ident := &flotillapb.StoreIdent{ClusterId: resp.GetClusterId(), NodeId: resp.GetNodeId()}
	if ident.GetClusterId() == "" || ident.GetNodeId() == 0 || ident.GetNodeId() > multiraft.MaxNodeID {
		return fmt.Errorf("bad join response from %s", addr)
	}
	if err := writeIdent(n.eng, ident); err != nil {
		return err
	}
	if err := n.becomeMember(ident, resp.GetNodes()); err != nil {
		n.log.Error("starting as a member failed", "err", err)
		return err
	}
	n.log.Info("joined the cluster", "via", addr, "node", ident.GetNodeId())
	return nil
}

// Close stops the node: it stops serving, stops its raft groups and closes
// its store. It is idempotent.
//
// The order matters: stopCtx ends first, so that loops and forwarded calls
// end; the state becomes stopped (under memberMu, so an init or join in
// progress finishes first and none starts after); the servers stop (the
// gRPC server waits for its handlers: WaitForHandlers); the host stops, so
// that proposals and reads in flight fail now rather than at their
// deadlines; then the gate, taken exclusively, waits for the requests made
// in this process; the stopper waits for every goroutine; only then are the
// transport, the pool and the store closed.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		n.stop()
		// memberMu only waits out an init or join in progress: once the
		// state is stopped they refuse to start. It must not be held
		// while handlers drain (an Init handler may be waiting for it).
		n.memberMu.Lock()
		n.mu.Lock()
		n.mu.state = stateStopped
		host := n.mu.host
		n.mu.Unlock()
		n.memberMu.Unlock()
		if n.httpServer != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if n.httpServer.Shutdown(ctx) != nil {
				_ = n.httpServer.Close()
			}
			cancel()
		} else if n.httpLis != nil {
			_ = n.httpLis.Close()
		}
		if n.grpcServer != nil {
			n.grpcServer.Stop()
		} else if n.lis != nil {
			_ = n.lis.Close()
		}
		if host != nil {
			host.Stop() // in-flight proposals and reads fail now
		}
		n.gate.Lock()
		n.gate.closed = true
		n.gate.Unlock()
		n.stopper.Stop()
		var errs []error
		if n.transport != nil {
			errs = append(errs, n.transport.Close())
		}
		if n.pool != nil {
			errs = append(errs, n.pool.Close())
		}
		if n.eng != nil {
			errs = append(errs, n.eng.Close())
		}
		n.closeErr = errors.Join(errs...)
	})
	return n.closeErr
}
