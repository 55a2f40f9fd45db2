#!/bin/busybox sh
# /init of the csv-guest test initramfs (tests/kernel/test_csv_guest_vm.py). Results go to the second
# serial port (/dev/ttyS1) so kernel messages on the console cannot interleave with them.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /tmp
. /test.env   # MNONCE_V1 USER_DATA_V1 MNONCE_V2 USER_DATA_V2 PROBE_CASES HV_CASES

stty -F /dev/ttyS1 raw -echo 2>/dev/null
exec 3>/dev/ttyS1
say() { echo "$*" >&3; }
params=/sys/module/csv_guest/parameters

# load NAME KO [PARAMS]: one finit_module() call; its result and the kernel lines it caused
load() {
    dmesg -c >/dev/null
    /csv-guest-probe insmod "$@" >&3 2>&1
    dmesg -c | sed "s/^/LOADLOG $1 /" >&3
}

# collect NAME MNONCE USER_DATA [EXTRA...]: ioctl-get-attestation, its output, the report as base64
collect() {
    name=$1 mnonce=$2 user_data=$3; shift 3
    /ioctl-get-attestation --mnonce "$mnonce" --user-data "$user_data" --out "/tmp/$name.cert" \
        --nonce-out "/tmp/$name.nonce" "$@" >/tmp/collect.out 2>&1
    say "COLLECT $name rc=$?"
    sed "s/^/COLLECT-OUT $name /" /tmp/collect.out >&3
    say "LASTFLAGS $name $(cat $params/test_last_flags)"
    if [ -f "/tmp/$name.cert" ]; then
        say "BEGIN $name.cert"
        base64 "/tmp/$name.cert" >&3
        say "END $name.cert"
    fi
}

say "GUEST up $(uname -r)"
load normal-with-override /csv-guest-normal.ko "test_skip_csv_check=1 test_firmware=csv-guest/v1.bin"
load test-without-override /csv-guest-test.ko
load test-with-override /csv-guest-test.ko "test_skip_csv_check=1 test_firmware=csv-guest/v1.bin"
say "DEVICE $(stat -c '%A' /dev/csv-guest 2>&1)"

collect v1 "$MNONCE_V1" "$USER_DATA_V1"
/csv-guest-probe $PROBE_CASES >&3 2>&1
say "PROBE rc=$?"

printf %s csv-guest/v2.bin > $params/test_firmware
collect v2 "$MNONCE_V2" "$USER_DATA_V2" --extended v2

/csv-guest-probe $HV_CASES >&3 2>&1
echo > $params/test_firmware  # blank: no fake firmware
/csv-guest-probe plain >&3 2>&1

rmmod csv_guest 2>/tmp/rmmod.err
say "UNLOAD rc=$? $(cat /tmp/rmmod.err)"
say "BEGIN dmesg"
dmesg >&3
say "END dmesg"
say "GUEST done"
sync
poweroff -f
