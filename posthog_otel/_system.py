"""What PostHog's SDK says about the process on captured events (computed once)."""

from __future__ import annotations

import platform
import sys
from typing import Any, Dict


def system_properties() -> Dict[str, Any]:
    properties: Dict[str, Any] = {
        "$python_runtime": platform.python_implementation(),
        "$python_version": "%s.%s.%s" % sys.version_info[:3],
    }
    if sys.platform.startswith("linux"):
        properties["$os"] = "Linux"
        release = _os_release()
        properties["$os_version"] = release.get("VERSION_ID", "")
        if release.get("NAME"):
            properties["$os_distro"] = release["NAME"]
    elif sys.platform == "darwin":
        properties["$os"] = "Mac OS X"
        properties["$os_version"] = platform.mac_ver()[0]
    elif sys.platform.startswith("win"):
        properties["$os"] = "Windows"
        properties["$os_version"] = platform.win32_ver()[0]
    else:
        properties["$os"] = sys.platform
        properties["$os_version"] = platform.release()
    return properties


def _os_release() -> Dict[str, str]:
    for path in ("/etc/os-release", "/usr/lib/os-release"):
        try:
            with open(path, encoding="utf-8") as handle:
                lines = handle.read().splitlines()
        except OSError:
            continue
        pairs = (line.split("=", 1) for line in lines if "=" in line)
        return {k.strip(): v.strip().strip('"') for k, v in pairs}
    return {}
