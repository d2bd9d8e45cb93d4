"""The data-centre domains an SDKAppID can live in."""

from __future__ import annotations

import enum

__all__ = ["Region"]


class Region(str, enum.Enum):
    """Where an app's REST API is served; the value is the domain name."""

    CHINA = "console.tim.qq.com"
    SINGAPORE = "adminapisgp.im.qcloud.com"
    SEOUL = "adminapikr.im.qcloud.com"
    FRANKFURT = "adminapiger.im.qcloud.com"
    SILICON_VALLEY = "adminapiusa.im.qcloud.com"
    JAKARTA = "adminapiidn.im.qcloud.com"
    TOKYO = "adminapijpn.im.qcloud.com"
    MUMBAI = "adminapiind.im.qcloud.com"

    @classmethod
    def parse(cls, value: Region | str) -> Region:
        """Accept a member, its name (``"singapore"``, ``"SILICON_VALLEY"``) or its domain."""
        if isinstance(value, Region):
            return value
        text = value.strip()
        key = text.upper().replace("-", "_").replace(" ", "_")
        if key in cls.__members__:
            return cls.__members__[key]
        for region in cls:
            if region.value == text.lower():
                return region
        names = ", ".join(r.name.lower() for r in cls)
        raise ValueError(f"unknown region {value!r}; expected one of: {names}")

    @property
    def base_url(self) -> str:
        """``https://{domain}``, the root every endpoint path is appended to."""
        return f"https://{self.value}"
