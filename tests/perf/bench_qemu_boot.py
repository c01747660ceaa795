"""Boot overhead of a real guest: API call to console marker, against bare QEMU.

    .venv/bin/python -m tests.perf.bench_qemu_boot [--runs 3] [--parallel 4]

Starts an all-in-one cloud whose one host is this machine (real QEMU through
libvirtd), uploads the test guest (scripts/test-guest.sh) as kernel, ramdisk and
root images, and measures, in the same run:

- bare: ``qemu-system-x86_64`` alone booting the same kernel and initramfs with the
  same command line and config drive, process start to the READY marker;
- cold: ``POST /v1/servers`` to the READY marker in the guest's console log, the
  host's image cache empty (the first boot fetches kernel, ramdisk and root);
- warm: the same with the images cached (the median of ``--runs``);
- parallel: ``--parallel`` servers created at once on the one host, time until every
  one has printed its marker.

Prints overhead = warm - bare (goal <= 1.0 s). The marker is read from the console
file on the host (polled every 10 ms), not through the API, so the figure is the
cloud's and not the polling's.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import libvirt

from instance_manager import config_drive
from ironbark import config, logs
from ironbark.allinone import AllInOne
from message_bus.messages import GuestConfig
from tests import guest
from tests.helpers import Api

CMDLINE = "console=ttyS0 quiet"


def _config(data_dir: Path) -> config.Config:
    return config.ensure_secrets(config.load(
        data_dir=data_dir,
        bus={"url": "memory://", "namespace": f"bench-{uuid.uuid4().hex[:6]}",
             "polling_interval": 0.001},
        api={"port": 0}, image_store={"port": 0},
        host={"hypervisor": "qemu", "report_interval": 1.0},
        group={"summary_interval": 0.2}))


def _upload(api: Api, files: guest.GuestFiles) -> None:
    def image(name: str, data: bytes, **fields: object) -> str:
        r = api.post("/v1/images", {"name": name, **fields})
        assert r.status == 201, r
        put = api.session.put(f"{api.url}/v1/images/{r.body['image']['id']}/file", data=data,
                              headers={"Content-Type": "application/octet-stream"},
                              timeout=120)
        assert put.status_code == 200, put.text
        return str(r.body["image"]["id"])

    kernel = image("kernel", files.kernel.read_bytes(), disk_format="aki")
    ramdisk = image("ramdisk", files.initrd.read_bytes(), disk_format="ari")
    image("guest", b"\0" * (1024 * 1024), disk_format="ami", kernel_id=kernel,
          ramdisk_id=ramdisk, properties={"os_command_line": CMDLINE})


def _boot(api: Api, instances: Path, name: str) -> tuple[str, float]:
    """Seconds from the create call to the guest's marker."""
    start = time.monotonic()
    r = api.post("/v1/servers", {"name": name, "flavor": "m1.tiny", "image": "guest"})
    assert r.status == 202, r
    server_id = r.body["server"]["id"]
    (marker, *_) = guest.wait_for_markers(instances / server_id / "console.log", 1,
                                          timeout=180)
    assert marker.uuid == server_id, marker
    return server_id, time.monotonic() - start


def _delete(api: Api, server_ids: list[str]) -> None:
    for server_id in server_ids:
        assert api.delete(f"/v1/servers/{server_id}").status == 202
    for server_id in server_ids:
        api.wait_gone(server_id, timeout=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--parallel", type=int, default=4)
    args = parser.parse_args()
    logs.setup("WARNING")
    files = guest.build()
    work = Path(tempfile.mkdtemp(prefix="bench-qemu-"))
    try:
        drive = config_drive.build(work, str(uuid.uuid4()), "bare",
                                   GuestConfig(hostname="bare", project_id="p"))
        bare = [guest.boot_bare(files, drive, work, cmdline=CMDLINE).seconds_to_marker
                for _ in range(args.runs)]
        cloud = AllInOne(_config(work / "cloud"), hosts=1).start()
        try:
            api = Api(cloud.api_url, cloud.admin_token)
            _upload(api, files)
            instances = Path(cloud.instance_managers[0].ctx.options.state_dir) / "instances"
            cold_id, cold = _boot(api, instances, "cold")
            _delete(api, [cold_id])  # the images stay cached (the cache keeps bases)
            warm = []
            for i in range(args.runs):
                server_id, seconds = _boot(api, instances, f"warm-{i}")
                warm.append(seconds)
                _delete(api, [server_id])
            start = time.monotonic()
            with ThreadPoolExecutor(args.parallel) as pool:
                booted = list(pool.map(lambda i: _boot(api, instances, f"par-{i}"),
                                       range(args.parallel)))
            parallel = time.monotonic() - start
            _delete(api, [server_id for server_id, _ in booted])
        finally:
            cloud.stop()
            _leftovers(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    bare_s, warm_s = statistics.median(bare), statistics.median(warm)
    print(f"bare QEMU to marker:   median {bare_s:.2f} s  ({', '.join(f'{b:.2f}' for b in bare)})")
    print(f"cold boot (no cache):  {cold:.2f} s")
    print(f"warm boot:             median {warm_s:.2f} s  ({', '.join(f'{w:.2f}' for w in warm)})")
    print(f"boot overhead:         warm - bare = {warm_s - bare_s:.2f} s  (goal <= 1.00 s); "
          f"cold - bare = {cold - bare_s:.2f} s")
    print(f"{args.parallel} at once on one host: all markers in {parallel:.2f} s "
          f"(each {', '.join(f'{s:.2f}' for _, s in booted)} s)")


def _leftovers(work: Path) -> None:
    """Remove any domain this run left on libvirtd (a failed run must not leak guests)."""
    conn = libvirt.open("qemu:///system")
    try:
        for domain in conn.listAllDomains():
            if str(work) in domain.XMLDesc(0):
                if domain.isActive():
                    domain.destroy()
                domain.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE)
    finally:
        conn.close()


if __name__ == "__main__":
    main()
