#!/bin/bash
# The checks of tests/systemd-vm/run.sh, inside the VM: a oneshot unit (vmtest.service) runs
# this after multi-user.target on each boot, its output on the serial console. Boot 1 installs
# the package and checks the service; it ends in `systemctl reboot`. Boot 2 checks that the
# service came back, upgrades the package, breaks the config (the start limit) and powers off.
#
# Each check prints `@@CHECK ok NAME: DETAIL` or `@@CHECK FAIL NAME: DETAIL`; the host fails
# the test on a FAIL or when `@@VMTEST-END` is missing. Times are measured here, in the guest.
set -u
STATE=/var/lib/vmtest RUN=/run/vmtest
mkdir -p $STATE $RUN
boot=$(($(cat $STATE/boots 2>/dev/null || echo 0) + 1))
echo $boot > $STATE/boots
sync

PASS_DAEMON=$(cat /root/vmtest/daemon-password)
PASS_VIEWER=$(cat /root/vmtest/viewer-password)
TOPIC=smplcast/vm
ok() { echo "@@CHECK ok $1: $2"; }
bad() { # a failed check, with what the service logged last
  echo "@@CHECK FAIL $1: $2"
  echo "$1" >> $STATE/failed
  systemctl status smplcast --no-pager -n 0 2>&1 | sed 's/^/@@LOG /'
  journalctl -u smplcast -n 30 --no-pager -o short-monotonic | sed 's/^/@@LOG /'
  tail -n 3 $RUN/*.err $RUN/text.log 2>&1 | sed 's/^/@@LOG /'
}
check() { # check NAME DETAIL COMMAND...: ok if COMMAND succeeds
  local name=$1 detail=$2; shift 2
  if "$@"; then ok "$name" "$detail"; else bad "$name" "$detail"; fi
}
now() { date +%s.%N; }
secs() { awk "BEGIN { printf \"%.1f\", $2 - $1 }"; }
le() { awk "BEGIN { exit !($1 <= $2) }"; }
prop() { systemctl show -p "$1" --value smplcast; }
# wait_for SECONDS COMMAND...: polls COMMAND until it succeeds; fails after SECONDS.
wait_for() {
  local end=$((SECONDS + $1))
  shift
  until "$@"; do
    [ $SECONDS -lt $end ] || return 1
    sleep 0.5
  done
}
# The subscribers: the status and camera topics (text), and the poses (topic and size only).
# Lines are `UNIXTIME TOPIC PAYLOAD`, so a check looks at what came after a moment.
subscribe() {
  mosquitto_sub -h 127.0.0.1 -u viewer -P "$PASS_VIEWER" -t $TOPIC/status -t $TOPIC/camera -F '%U %t %p' \
    >> $RUN/text.log 2> $RUN/text.err &
  mosquitto_sub -h 127.0.0.1 -u viewer -P "$PASS_VIEWER" -t $TOPIC/pose -F '%U %t %l' \
    >> $RUN/pose.log 2> $RUN/pose.err &
  sleep 1
}
# first_after T LEAF PATTERN: the time of the first message on LEAF (status, camera, pose)
# after time T matching PATTERN; seen_after: whether there is one.
first_after() {
  awk -v t="$1" -v topic="$TOPIC/$2" -v pat="$3" \
    '$1 > t && $2 == topic && $0 ~ pat { print $1; exit }' $RUN/*.log
}
seen_after() { [ -n "$(first_after "$@")" ]; }
count_after() { awk -v t="$1" -v topic="$TOPIC/$2" '$1 > t && $2 == topic { n++ } END { print n + 0 }' $RUN/*.log; }
# logged_last PATTERN: the time of the unit's last journal line matching PATTERN.
logged_last() { journalctl -u smplcast -o short-unix | awk -v pat="$1" '$0 ~ pat { t = $1 } END { print t }'; }
started_count() { journalctl -b -u smplcast -o cat | grep -c '^Started smplcast.service'; }
poses_after() { [ "$(count_after "$1" pose)" -ge "$2" ]; }
is() { [ "$(systemctl is-active smplcast)" = "$1" ]; }
# decoded: smplcast's own subscriber decodes 3 pose messages (CBOR, docs/WIRE.md) within 60 s.
decoded() {
  timeout 60 smplcast sub --username viewer --password-file /root/vmtest/viewer-password \
    --device vm --count 3 > $RUN/sub.jsonl 2> $RUN/sub.err &&
    [ "$(grep -c '"pose"' $RUN/sub.jsonl)" -ge 3 ]
}
refuses_anonymous() { mosquitto_sub -h 127.0.0.1 -t '#' -C 1 -W 3 2>&1 | grep -q 'not authori'; }
in_video_group() { # the daemon's process has the video group (SupplementaryGroups=video)
  grep '^Groups:' "/proc/$(prop MainPID)/status" | grep -qw "$(getent group video | cut -d: -f3)"
}

if [ "$boot" = 1 ]; then
  echo "@@VMTEST boot 1 at $(cut -d' ' -f1 /proc/uptime) s"
  check "vivid loaded" "$(ls -l /dev/video* 2>&1 | tr '\n' ' ')" test -c /dev/video0
  check "broker refuses anonymous clients" "mosquitto with a password file" refuses_anonymous
  subscribe

  # Install, as a user would (no network here: recommends are not installed).
  t=$(now)
  if DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    /root/vmtest/old.deb > $RUN/apt-old.log 2>&1; then
    ok "install" "$(dpkg-query -W -f='${Version}' smplcast) in $(secs "$t" "$(now)") s (apt-get install ./smplcast_*.deb)"
  else
    bad "install" "$(tail -5 $RUN/apt-old.log)"
  fi
  check "installed, not started" "the package leaves it to the user" is inactive

  # The user's configuration: the vivid camera, the local broker with a login whose password
  # comes as a credential (a drop-in, as `systemctl edit smplcast` makes it).
  cat > /etc/smplcast/config.toml <<EOF
# Edited by the VM test: the vivid camera and a broker that requires a login.
device_id = "vm"
[source]
kind = "v4l2"
device = "/dev/video0"
width = 320
height = 180
fps = 5
format = "YUYV"
[person]
# no detector: the whole frame is one person (vivid shows a test pattern)
[model]
dir = "/usr/share/smplcast/models/narrow"
threads = 1
[mqtt]
host = "127.0.0.1"
port = 1883
username = "smplcast"
password_credential = "mqtt-password"
connect_timeout_s = 0
[stats]
interval_s = 2
[pipeline]
# Under emulation (TCG) a frame takes seconds through the model: the model gets one frame a
# second, one waits at most, and a stop has room to drain them within TimeoutStopSec.
model_fps = 1
frame_queue = 1
shutdown_timeout_s = 12
EOF
  install -m 600 /dev/null /etc/smplcast/mqtt-password
  echo "$PASS_DAEMON" > /etc/smplcast/mqtt-password
  mkdir -p /etc/systemd/system/smplcast.service.d
  printf '[Service]\nLoadCredential=mqtt-password:/etc/smplcast/mqtt-password\n' \
    > /etc/systemd/system/smplcast.service.d/credential.conf
  sha256sum /etc/smplcast/config.toml > $STATE/config.sha256

  # Start: `enable --now` returns once the daemon said READY (Type=notify).
  t=$(now)
  systemctl enable --now smplcast > $RUN/enable.log 2>&1
  ready=$(secs "$t" "$(now)")
  limit=$(prop TimeoutStartUSec)
  check "READY" "active $ready s after enable --now (TimeoutStartSec $limit; the VM is emulated, TCG)" \
    is active
  check "messages reach a subscriber" "3 poses decoded by smplcast sub, status online" \
    eval 'decoded && grep -q "$TOPIC/status online" $RUN/text.log'
  check "credential" "the daemon logged in with the password of LoadCredential; config.toml holds none" \
    eval '! grep -q "$PASS_DAEMON" /etc/smplcast/config.toml && [ -n "$(prop LoadCredential)" ]'
  exposure=$(systemd-analyze security smplcast --no-pager 2>/dev/null | sed -nE 's/.*Overall exposure level for smplcast.service: ([0-9.]+).*/\1/p')
  check "hardening" "systemd-analyze security smplcast: exposure ${exposure:-?} (≤ 2.5)" \
    le "${exposure:-99}" 2.5
  check "DynamicUser, video group" "uid $(stat -c %u "/proc/$(prop MainPID)"), $(grep '^Groups:' "/proc/$(prop MainPID)/status" | tr -s '\t ' ' ')" \
    in_video_group

  check "ExecStartPre, StateDirectory" "check-config passed before the start; /var/lib/smplcast → $(readlink /var/lib/smplcast)" \
    eval 'journalctl -u smplcast -o cat | grep -q "^/etc/smplcast/config.toml: OK" && [ -d /var/lib/private/smplcast ]'

  # tract reads the CPU's features and part from /proc/cpuinfo (ARM: NEON, fp16, the core's
  # kernels); the unit's /proc must show it (ProcSubset=pid hid it).
  check "/proc/cpuinfo in the service's namespace" "tract's CPU detection reads it" \
    eval 'nsenter -t "$(prop MainPID)" -m test -r /proc/cpuinfo &&
      ! journalctl -u smplcast -o cat | grep -q "Could not read /proc/cpuinfo"'

  # Watchdog: a stalled daemon (SIGSTOP) stops its pings; systemd kills and restarts it.
  # The restart is due within WatchdogSec (counted from the last ping, before the stall) plus
  # RestartSec; 2 s more for the kill and the emulated CPU.
  wd=$(($(prop WatchdogUSec | sed 's/s$//') + 0)) rs=$(($(prop RestartUSec | sed 's/s$//') + 0))
  pid=$(prop MainPID)
  t=$(now)
  kill -STOP "$pid"
  wait_for 90 eval '[ "$(prop NRestarts)" = 1 ] && is active'
  restarts=$(prop NRestarts)
  offline=$(first_after "$t" status offline)
  online=$(first_after "${offline:-$t}" status online)
  scheduled=$(logged_last 'Scheduled restart job')
  killed=$(logged_last 'Watchdog timeout')
  if [ "$restarts" = 1 ] && [ "$(prop MainPID)" != "$pid" ] && [ -n "$offline" ] && [ -n "$online" ] &&
    [ -n "$killed" ] && [ -n "$scheduled" ] && le "$(secs "$t" "$scheduled")" "$((wd + rs + 2))"; then
    ok "watchdog" "stalled at 0 s; killed at $(secs "$t" "$killed") s (WatchdogSec=$wd); restart scheduled at $(secs "$t" "$scheduled") s (RestartSec=$rs, due by $((wd + rs)) s), offline at $(secs "$t" "$offline") s, online again at $(secs "$t" "$online") s; NRestarts $restarts"
  else
    bad "watchdog" "NRestarts ${restarts}, killed ${killed:-never}, restart ${scheduled:-never}, offline ${offline:-never}, online ${online:-never} (stalled at $t)"
  fi

  # The camera: unplugged (the driver unbound) and plugged back: no restart.
  pid=$(prop MainPID)
  t=$(now)
  echo vivid.0 > /sys/bus/platform/drivers/vivid/unbind
  wait_for 30 seen_after "$t" camera '"state":"lost"'
  lost=$(first_after "$t" camera '"state":"lost"')
  sleep 2
  t2=$(now)
  echo vivid.0 > /sys/bus/platform/drivers/vivid/bind
  wait_for 60 seen_after "$t2" camera '"state":"streaming"'
  back=$(first_after "$t2" camera '"state":"streaming"')
  wait_for 60 poses_after "${back:-9e18}" 3
  after=$(count_after "${back:-9e18}" pose)
  if [ -n "$lost" ] && [ -n "$back" ] && [ "$(prop MainPID)" = "$pid" ] && [ "$(prop NRestarts)" = 1 ] && [ "$after" -ge 3 ]; then
    ok "camera unplugged and plugged back" "lost $(secs "$t" "$lost") s after unbind, streaming $(secs "$t2" "$back") s after bind, $after poses since; same process, NRestarts still 1"
  else
    bad "camera unplugged and plugged back" "lost ${lost:-never}, streaming ${back:-never}, pid $(prop MainPID) (was $pid), NRestarts $(prop NRestarts), $after poses after"
  fi

  # The journal: the daemon's events with their fields (telemetry::log).
  journalctl -u smplcast -o json > $RUN/journal.json
  check "journal fields" "$(grep -c '"DEVICE_ID":"vm"' $RUN/journal.json) events with DEVICE_ID=vm; the camera loss with DEVICE and REASON, PRIORITY 4" \
    eval 'grep -q "\"DEVICE_ID\":\"vm\"" $RUN/journal.json &&
      grep "Camera lost" $RUN/journal.json | grep "\"REASON\":" | grep "\"DEVICE\":\"/dev/video0\"" | grep -q "\"PRIORITY\":\"4\""'

  # Stop: the daemon publishes offline and exits cleanly within TimeoutStopSec.
  t=$(now)
  systemctl stop smplcast
  took=$(secs "$t" "$(now)")
  check "stop" "$took s (TimeoutStopSec=15), result $(prop Result), offline published" \
    eval '[ "$(prop Result)" = success ] && le "$took" 15 && seen_after "$t" status " offline$"'

  echo "@@VMTEST reboot"
  systemctl reboot
  exit 0
fi

# Boot 2: the service is back by itself, then the upgrade.
echo "@@VMTEST boot 2 at $(cut -d' ' -f1 /proc/uptime) s"
subscribe
active_at=$(prop ActiveEnterTimestampMonotonic)
check "reboot" "active again $(awk "BEGIN { printf \"%.1f\", $active_at / 1e6 }") s after the kernel started, poses flowing" \
  eval 'is active && decoded'

pid=$(prop MainPID) starts=$(started_count) old=$(dpkg-query -W -f='${Version}' smplcast)
t=$(now)
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends /root/vmtest/new.deb \
  > $RUN/apt-new.log 2>&1 || bad "upgrade" "$(tail -5 $RUN/apt-new.log)"
wait_for 120 is active
new=$(dpkg-query -W -f='${Version}' smplcast)
restarted=$(($(started_count) - starts))
if [ "$new" != "$old" ] && [ "$restarted" = 1 ] && [ "$(prop MainPID)" != "$pid" ] &&
  sha256sum -c --quiet $STATE/config.sha256 && wait_for 60 seen_after "$t" status online; then
  ok "upgrade" "$old → $new while running in $(secs "$t" "$(now)") s: restarted once, the edited config.toml kept, online again"
else
  bad "upgrade" "$old → $new, restarted $restarted times, config $(sha256sum -c --quiet $STATE/config.sha256 2>&1 || true)"
fi

# A broken config: ExecStartPre (check-config) refuses it naming the key, and systemd gives up
# after StartLimitBurst=5 starts within StartLimitIntervalSec (this boot's earlier starts count
# too): the unit is failed, not restarting forever.
sed -i 's/^fps = 5$/fps = "fast"/' /etc/smplcast/config.toml
t=$(now)
systemctl restart smplcast > /dev/null 2>&1
gave_up() { journalctl -u smplcast -o cat | grep -q 'Start request repeated too quickly'; }
wait_for 120 eval 'gave_up && is failed'
if gave_up && is failed && journalctl -u smplcast -o cat | grep -q 'error: /etc/smplcast/config.toml: source.fps'; then
  ok "start limit" "a broken config.toml: check-config names source.fps; after $(prop NRestarts) automatic restarts systemd gave up (start request repeated too quickly) at $(secs "$t" "$(now)") s, unit failed"
else
  bad "start limit" "$(systemctl is-active smplcast), NRestarts $(prop NRestarts)"
fi

echo "@@VMTEST-END $(cat $STATE/failed 2>/dev/null | wc -l) failed"
systemctl poweroff
