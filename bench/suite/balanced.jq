# Whether a Flotilla cluster is ready for a benchmark, for bench/suite/run.sh:
# prints what is missing, or nothing once it is ready. Inputs (--argjson):
#   $stores  `flotilla cluster status --format json`
#   $ranges  `flotilla cluster ranges --format json`
#   $want    the number of ranges the cluster was pre-split into
# Ready: 3 live stores; $want ranges, each with exactly 3 replicas, all
# voters, and a leader; every live store leads at least floor($want/3)-1
# of them (the placement driver spreads leaders; one short of an even
# share is spread enough).
def voters: [.replicas[] | select(.type == "voter")] | length;
([$stores[] | select(.live) | .store_id]) as $live
| ([$ranges[] | .leader_store] | group_by(.) | map({key: (.[0] | tostring), value: length}) | from_entries) as $leaders
| ([($want / 3 | floor) - 1, 0] | max) as $least
| if ($live | length) != 3 then "\($live | length) live stores, want 3"
  elif ($ranges | length) != $want then "\($ranges | length) ranges, want \($want)"
  elif any($ranges[]; (.replicas | length) != 3 or voters != 3) then
    "ranges without exactly 3 voters: \([$ranges[] | select((.replicas | length) != 3 or voters != 3) | .range_id])"
  elif any($ranges[]; .leader_store == 0) then
    "ranges without a leader: \([$ranges[] | select(.leader_store == 0) | .range_id])"
  elif any($live[]; ($leaders[tostring] // 0) < $least) then
    "leaders per store \($leaders), want at least \($least) each"
  else empty end
