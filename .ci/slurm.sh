#!/usr/bin/env bash
# A real single-node SLURM cluster on this machine, for CI and for trying profiles/slurm locally.
#
#   sudo .ci/slurm.sh up      # install (Debian packages) if missing, configure, start, wait for the node
#   sinfo; snakemake --profile profiles/slurm --configfile tests/config/tiny.yaml
#   sudo .ci/slurm.sh down    # cancel the jobs, stop every daemon this script started (by PID)
#   .ci/slurm.sh status       # 0 when the cluster is up and the node answers
#
# Several users of one cluster (two CI runs on one machine): each sets FHNKIT_SLURM_LEASE to a PID
# that lives as long as it needs the cluster (.ci/run: its own); `up` reuses a running cluster and
# records the lease, `down` drops it and stops the cluster only when no live lease is left.
#
# What it sets up: /etc/slurm/slurm.conf and gres.conf (SLURM's default place: Snakemake's SLURM
# plugin drops SLURM_CONF from the environment of the job steps it starts, so a config elsewhere
# is not found inside jobs; the script refuses to overwrite files it did not write, and `down`
# removes its own), everything else under $FHNKIT_SLURM_DIR (default /tmp/fhnkit-slurm):
#   munged on a private socket and key; slurmctld and slurmd (SLURM 22.05 from Debian 12) as
#   daemons with PID files; one node (this host, its real CPUs and 90 % of its memory) in one
#   partition `debug`; no systemd, no cgroups (proctrack/linuxproc, task/none), no accounting
#   (sacct and sacctmgr do not work: Snakemake's SLURM plugin polls squeue instead), select/cons_tres
#   and two fake GPUs (`Gres=gpu:2`, character devices that behave as /dev/null), so that jobs that
#   request GPUs (sbatch --gpus=1) are scheduled, counted and given CUDA_VISIBLE_DEVICES as on a real
#   GPU node. Open MPI and PMIx are installed before slurmd starts, so `srun --mpi=pmix` works.
# Needs root (apt-get, and slurmd starts job steps as the submitting user). Debian/Ubuntu only.
set -euo pipefail

DIR=${FHNKIT_SLURM_DIR:-/tmp/fhnkit-slurm}
PARTITION=${FHNKIT_SLURM_PARTITION:-debug}
N_GPUS=${FHNKIT_SLURM_NODE_GPUS:-2}
CTLD_PORT=${FHNKIT_SLURMCTLD_PORT:-6817}
SLURMD_PORT=${FHNKIT_SLURMD_PORT:-6818}
ETC=/etc/slurm
CONF="$ETC/slurm.conf"
MARK="# Written by .ci/slurm.sh"
unset SLURM_CONF

LEASE=${FHNKIT_SLURM_LEASE:-}

log() { echo "slurm.sh: $*" >&2; }

lock() { mkdir -p "$DIR" && exec 9>"$DIR/lock" && flock 9; }  # one up/down at a time

live_leases() {  # PIDs of the other users that still hold the cluster (dead ones are dropped)
    local f
    for f in "$DIR"/leases/*; do
        [ -e "$f" ] || continue
        # alive and not a zombie (state Z: ended, not yet reaped)
        if [ -r "/proc/${f##*/}/stat" ] && [ "$(cut -d' ' -f3 "/proc/${f##*/}/stat")" != Z ]; then
            echo "${f##*/}"
        else
            rm -f "$f"
        fi
    done
}

# ---------------------------------------------------------------------------------------------
install_packages() {
    local pkgs=(munge slurmctld slurmd slurm-client openmpi-bin libopenmpi-dev libpmix-dev libpmix-bin)
    local missing=()
    for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing ${missing[*]}"
    # A policy-rc.d that forbids starting services: the packages' postinst must not start the
    # system's munge/slurm daemons (this script starts its own, and stops only those).
    local policy=/usr/sbin/policy-rc.d added_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && added_policy=1
    fi
    local rc=0
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null; } || rc=$?
    [ "$added_policy" = 1 ] && rm -f "$policy"
    [ $rc -eq 0 ] || { log "apt-get failed ($rc)"; exit $rc; }
}

pid_of() {  # the PID recorded for daemon $1 if that process is alive and is that daemon, else empty
    local file="$DIR/run/$1.pid" pid
    [ -s "$file" ] || return 0
    pid=$(tr -d ' \n' <"$file")
    [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] && [ "$(cat "/proc/$pid/comm")" = "$1" ] && echo "$pid"
    return 0
}

node_state() { sinfo -h -N -o '%T' 2>/dev/null | head -n 1; }

write_config() {
    local host mem node_line
    host=$(hostname -s)
    # The node as slurmd sees it (CPUs, sockets, cores, threads), with 90 % of its memory so that
    # slurmd never reports less than configured (which would drain the node).
    node_line=$(slurmd -C 2>/dev/null | head -n 1 | sed -E 's/^NodeName=[^ ]+ //')
    mem=$(awk '/^MemTotal:/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)
    node_line=$(sed -E "s/RealMemory=[0-9]+/RealMemory=$mem/" <<<"$node_line")
    local f
    for f in "$CONF" "$ETC/gres.conf"; do
        if [ -e "$f" ] && ! grep -q "^$MARK" "$f"; then
            log "$f exists and was not written by this script: not touching a real SLURM setup"
            exit 1
        fi
    done
    mkdir -p "$ETC" "$DIR"/{run,log,munge,dev,state/ctld,state/slurmd}
    chmod 755 "$DIR" "$DIR/munge"  # munged: the socket's directory must be reachable by all

    # Fake GPUs: character devices with the numbers of /dev/null. SLURM only needs the files to
    # exist (File= in gres.conf) to count, bind and announce them (CUDA_VISIBLE_DEVICES).
    local i files=()
    for ((i = 0; i < N_GPUS; i++)); do
        [ -c "$DIR/dev/nvidia$i" ] || mknod -m 666 "$DIR/dev/nvidia$i" c 1 3
        files+=("$DIR/dev/nvidia$i")
    done

    cat >"$CONF" <<EOF
$MARK: a single-node test cluster (no systemd, no cgroups, no accounting); state in $DIR.
ClusterName=fhnkit
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$DIR/munge/munge.socket
StateSaveLocation=$DIR/state/ctld
SlurmdSpoolDir=$DIR/state/slurmd
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SwitchType=switch/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=500
GresTypes=gpu
ReturnToService=2
# Finished jobs stay visible to squeue for 5 minutes (Snakemake's plugin polls squeue).
MinJobAge=300
KillWait=5
InactiveLimit=0
SlurmdTimeout=60
NodeName=$host $node_line NodeAddr=127.0.0.1 Gres=gpu:$N_GPUS State=UNKNOWN
PartitionName=$PARTITION Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    {
        echo "$MARK: fake GPUs (character devices behaving as /dev/null)."
        echo "AutoDetect=off"
        for f in "${files[@]}"; do echo "NodeName=$host Name=gpu File=$f"; done
    } >"$ETC/gres.conf"
    # No cgroup.conf is needed: nothing uses cgroups.
}

start_munged() {
    [ -n "$(pid_of munged)" ] && return 0
    [ -s "$DIR/munge/munge.key" ] || {
        dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none
        chmod 400 "$DIR/munge/munge.key"
    }
    munged --force --socket="$DIR/munge/munge.socket" --key-file="$DIR/munge/munge.key" \
        --pid-file="$DIR/run/munged.pid" --log-file="$DIR/log/munged.log" \
        --seed-file="$DIR/munge/munged.seed" </dev/null >>"$DIR/log/munged.out" 2>&1 9>&- ||
        failed munged
}

failed() {
    log "$1 did not start; its logs:"
    tail -n 20 "$DIR/log/$1.out" "$DIR/log/$1.log" >&2 2>/dev/null || true
    exit 1
}

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
    local limit=$1 what=$2 t=0
    shift 2
    until "$@"; do
        sleep 0.5
        t=$((t + 1))
        if [ $t -ge $((limit * 2)) ]; then
            log "timed out after ${limit}s waiting for $what; logs in $DIR/log:"
            tail -n 20 "$DIR"/log/*.log >&2 || true
            return 1
        fi
    done
}

node_is_idle() { [ "$(node_state)" = idle ]; }
node_is_usable() { case "$(node_state)" in idle | mixed | allocated) return 0 ;; *) return 1 ;; esac; }
pidfile_alive() { [ -n "$(pid_of "$1")" ]; }

up() {
    [ "$(id -u)" = 0 ] || { log "must run as root (apt-get, slurmd)"; exit 1; }
    local start=$SECONDS
    install_packages
    local t_install=$((SECONDS - start))
    lock
    if [ -n "$LEASE" ]; then mkdir -p "$DIR/leases" && touch "$DIR/leases/$LEASE"; fi
    if [ -n "$(pid_of slurmctld)" ] && [ -n "$(pid_of slurmd)" ] && node_is_usable; then
        log "already up ($CONF), node $(node_state); leases: $(live_leases | tr '\n' ' ')"
        return 0
    fi
    down_daemons quiet
    rm -rf "$DIR/state" "$DIR/run"
    write_config
    start_munged
    wait_for 10 munged pidfile_alive munged
    # -i: ignore any state left by an earlier cluster in this directory.
    # 9>&-: the daemons must not inherit the lock of this script (see lock)
    slurmctld -i </dev/null >>"$DIR/log/slurmctld.out" 2>&1 9>&- || failed slurmctld
    wait_for 30 slurmctld pidfile_alive slurmctld
    slurmd </dev/null >>"$DIR/log/slurmd.out" 2>&1 9>&- || failed slurmd
    wait_for 30 slurmd pidfile_alive slurmd
    if ! wait_for 60 "node $(hostname -s) to be idle" node_is_idle; then
        sinfo -N -l >&2 || true
        exit 1
    fi
    log "up in $((SECONDS - start)) s (packages: ${t_install} s); $(sinfo -h -N -o '%N %T cpus=%c mem=%m gres=%G')"
    log "MPI plugins: $(srun --mpi=list 2>&1 | tr -s ' \n\t' ' ')"
}

down_daemons() {  # stop the daemons this script started, by the PIDs they recorded
    local name pid t
    for name in slurmd slurmctld munged; do
        pid=$(pid_of "$name")
        [ -z "$pid" ] && continue
        kill -TERM "$pid" 2>/dev/null || true
        for ((t = 0; t < 40; t++)); do
            [ -d "/proc/$pid" ] || break
            sleep 0.25
        done
        if [ -d "/proc/$pid" ]; then
            log "$name ($pid) did not stop on SIGTERM; SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        [ "${1:-}" = quiet ] || log "stopped $name ($pid)"
        rm -f "$DIR/run/$name.pid"
    done
}

down() {
    lock
    [ -n "$LEASE" ] && rm -f "$DIR/leases/$LEASE"
    local others
    others=$(live_leases | tr '\n' ' ')
    if [ -n "${others// /}" ]; then
        log "still used by PID(s) $others(FHNKIT_SLURM_LEASE): left running"
        return 0
    fi
    if [ -n "$(pid_of slurmctld)" ]; then
        # Cancel what is still queued or running, so no job step outlives the cluster.
        local jobs
        jobs=$(squeue -h -o %i 2>/dev/null || true)
        if [ -n "$jobs" ]; then
            # shellcheck disable=SC2086
            scancel $jobs 2>/dev/null || true
            wait_for 30 "cancelled jobs to end" no_running_jobs || true
        fi
    fi
    down_daemons
    local f
    for f in "$CONF" "$ETC/gres.conf"; do
        if [ -e "$f" ] && grep -q "^$MARK" "$f"; then rm -f "$f"; fi
    done
}

no_running_jobs() { [ -z "$(squeue -h -t running,completing -o %i 2>/dev/null)" ]; }

status() {
    if [ -n "$(pid_of slurmctld)" ] && [ -n "$(pid_of slurmd)" ] && sinfo -h >/dev/null 2>&1; then
        sinfo -N -o '%N %T %c %m %G'
        return 0
    fi
    echo "not up" >&2
    return 1
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    status) status ;;
    *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
