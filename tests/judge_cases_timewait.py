"""Cases for the judges in tcplab.judges.timewait."""

from __future__ import annotations

from judge_case import Case
from tcplab.judges.timewait import (
    CostLevel,
    CostSeries,
    HolderTry,
    OldDuplicates,
    PortExhaustion,
    PortRangeWidening,
    RangeCount,
    SameTupleTry,
    TimeWaitCost,
    TimeWaitLength,
)
from tcplab.verdict import Verdict

C, P, R = Verdict.CONFIRMED, Verdict.PARTLY, Verdict.REFUTED
WATCHED = "watched until the kernel dropped it"
CONNECT_NET = SameTupleTry("connect() on 192.0.2.1", 2, True, "EADDRNOTAVAIL", None)
CONNECT_LO = SameTupleTry("connect() on 127.0.0.1", 2, True, "EADDRNOTAVAIL", 1.002, False, 65537)
BIND = SameTupleTry("bind()+SO_REUSEADDR on 192.0.2.1", 2, True, None, 0.0, False, 65537)
TW0 = HolderTry("client TIME_WAIT", 0, 6, "EADDRNOTAVAIL", 0, None, "ok")
TW2 = HolderTry("client TIME_WAIT", 2, 6, "EADDRNOTAVAIL", 6, 1.0, "ok")
TW2_NET = HolderTry("client TIME_WAIT", 2, 6, "EADDRNOTAVAIL", 0, None, "ok", "192.0.2.1")
CW = HolderTry("client CLOSE_WAIT", 2, 6, "EADDRNOTAVAIL", 0, None, "ok")
SERVER_TW = HolderTry("server TIME_WAIT", 2, 6, None, 6, 0.0, "ok")
NARROW = RangeCount((40000, 40281), 281, 281, "EADDRNOTAVAIL")
WIDE = RangeCount((40000, 40639), 639, 639, "EADDRNOTAVAIL")
BASE = CostLevel(0, 47.0, 47.0, 0)
SERVER = CostSeries("server side of 8 filler listeners", (
    CostLevel(0, 44.0, 45.0, 0, 13.0), CostLevel(3060, 44.0, 45.0, 3060, 13.0),
    CostLevel(20400, 44.5, 45.4, 20400, 13.0)))
CLIENT_DEFAULT = CostSeries("client side (range 32768-60999, 28232 ports)", (
    CostLevel(0, 45.0, 45.0, 0, 14.0), CostLevel(3000, 45.0, 45.0, 3000, 14.0)))
CLIENT_NARROW = CostSeries("client side (range 40000-43199, 3200 ports)", (
    CostLevel(0, 45.0, 45.0, 0, 13.0), CostLevel(3000, 265.0, 266.0, 3000, 230.0)))
BIND_NO_TS = SameTupleTry("bind()+SO_REUSEADDR, timestamps off", 2, False, "EADDRNOTAVAIL", None)

CASES: list[Case] = [
    # C11: TIME_WAIT's length against RHEL's 60 s (001) and 2 x MSL in 1-4 minutes (002)
    Case("C11", "mainline Linux: the timer armed on entry is TCP_TIMEWAIT_LEN",
         TimeWaitLength(59.998), C, ("60.0 s", "tolerance +-5 s", "seed 001")),
    Case("C11", "watched lifetime, the timer wheel fired 2 s late (HZ=250): just inside",
         TimeWaitLength(62.1, WATCHED, armed_s=60.0), C, ("62.1 s", "armed at 60.0 s")),
    Case("C11", "a lifetime 6 s off 60 s: outside the tolerance, still 2 x MSL in range",
         TimeWaitLength(66.0, WATCHED), P, ("66.0 s", "not seed 001's 60 s")),
    Case("C11", "a kernel with the Windows-like 240 s: 2 x RFC 1122's MSL, not RHEL's 60 s",
         TimeWaitLength(240.0), P, ("240.0 s", "2 x an MSL of 120 s")),
    Case("C11", "a kernel whose TIME_WAIT were 30 s: shorter than 2 x any MSL quoted",
         TimeWaitLength(30.0), R, ("30.0 s", "60-240 s")),
    Case("C11", "a TIME_WAIT of 250 s, past 4 minutes and the tolerance",
         TimeWaitLength(250.0), R, ("250.0 s",)),
    Case("C11", "no timewait timer reported", TimeWaitLength(None), R, ("no TIME_WAIT length",)),
    Case("C11", "the active closer went from FIN_WAIT2 straight to gone: no TIME_WAIT kept",
         TimeWaitLength(None, entered=None), R, ("was gone", "no timewait timer")),
    Case("C11", "watched: TIME_WAIT still there when the 300 s watch ended",
         TimeWaitLength(300.0, "watched until the kernel dropped it (up to 300 s)", 60.0), R,
         ("300.0 s", "outside 2 x MSL")),
    Case("C11", "every measured summary says which figures were judged and how 000's is read",
         TimeWaitLength(60.001), C,
         ("Judged: seed 001's 60 s", "seed 002's 1-4 minutes", "Not judged: seed 000's",
          "RFC 793", "TcpTimedWaitDelay", "off by 180 s")),
    # C13: does TIME_WAIT keep an old duplicate out of a new connection on its four-tuple?
    Case("C13", "this kernel: connect() refused on a network address, taken over on loopback "
         "after 1 s and by bind() at once, the old duplicate rejected by sequence/PAWS",
         OldDuplicates((CONNECT_NET, CONNECT_LO, BIND, BIND_NO_TS), 2.0), P,
         ("refused (EADDRNOTAVAIL)", "taken over after 1.0 s", "new ISN 65537",
          "held the four-tuple only for connect() on 192.0.2.1, bind()+SO_REUSEADDR, timestamps off")),
    Case("C13", "an RFC 793 stack: every path refused while TIME_WAIT lasts",
         OldDuplicates((CONNECT_NET, BIND_NO_TS), 2.0), C, ("refused",)),
    Case("C13", "a takeover whose new connection read the old bytes",
         OldDuplicates((CONNECT_NET, SameTupleTry("bind()", 0, True, None, 0.0, True, 1)), 2.0),
         R, ("took the old duplicate in",)),
    Case("C13", "a takeover where the old duplicate was never offered",
         OldDuplicates((SameTupleTry("bind()", 0, True, None, 0.0),), 2.0), R,
         ("not offered",)),
    Case("C13", "nothing tried", OldDuplicates(()), R, ("nothing measured",)),
    # C16: holders and new connections
    Case("C16", "this kernel: TIME_WAIT (reuse 0, and the default off loopback) and CLOSE_WAIT "
         "block A only; the default on loopback reopens after 1 s; the accept side never blocks",
         PortExhaustion((TW0, TW2, TW2_NET, CW, SERVER_TW), 2.0), P,
         ("refused (EADDRNOTAVAIL)", "6 new connections to A opened within 1.0 s",
          "per four-tuple", "on 192.0.2.1 (off loopback, tcp_tw_reuse=2)",
          "blocked off loopback only", "accept side never")),
    Case("C16", "the default off loopback blocks, and it is the only kind tried: still only "
         "towards the destination held",
         PortExhaustion((TW2_NET,), 2.0), P, ("per four-tuple",)),
    Case("C16", "a kernel whose default reused TIME_WAITs off loopback too: those did not block",
         PortExhaustion((TW0, TW2, HolderTry("client TIME_WAIT", 2, 6, "EADDRNOTAVAIL", 6, 1.0,
                                               "ok", "192.0.2.1"), CW), 2.0), P,
         ("Only client TIME_WAIT on 127.0.0.1 (loopback, tcp_tw_reuse=0), client CLOSE_WAIT",)),
    Case("C16", "every holder blocks every destination",
         PortExhaustion((HolderTry("client TIME_WAIT", 0, 6, "EADDRNOTAVAIL", 0, None,
                                   "EADDRNOTAVAIL"),), 2.0), C, ("kept new connections out",)),
    Case("C16", "holders block A but B still opens: per destination",
         PortExhaustion((TW0, CW), 2.0), P, ("per four-tuple",)),
    Case("C16", "no holder stopped anything (e.g. every TIME_WAIT reused at once)",
         PortExhaustion((TW2, SERVER_TW), 2.0), R, ("no holder stopped",)),
    Case("C16", "nothing tried", PortExhaustion(()), R, ("nothing measured",)),
    # C31: the default range, and widening it
    Case("C31", "this kernel: 32768-60999, one connection per usable port in both ranges",
         PortRangeWidening((32768, 60999), NARROW, WIDE, 0.01), P,
         ("32768-60999", "07f4c90062f8", "281 connections", "tolerance 2%")),
    Case("C31", "a pre-4.2 kernel: the article's default",
         PortRangeWidening((32768, 61000), NARROW, WIDE, 0.01), C, ("32768-61000",)),
    Case("C31", "a distribution that ships another default",
         PortRangeWidening((1024, 65000), NARROW, WIDE, 0.01), P, ("not the article's",)),
    Case("C31", "the wide range gave 2.5% fewer connections than ports: outside the tolerance",
         PortRangeWidening((32768, 60999), NARROW,
                           RangeCount((40000, 40639), 639, 623, "EADDRNOTAVAIL"), 0.01), R,
         ("623",)),
    Case("C31", "the wide range gave 1.5% fewer: inside the tolerance",
         PortRangeWidening((32768, 60999), NARROW,
                           RangeCount((40000, 40639), 639, 630, "EADDRNOTAVAIL"), 0.01), P),
    Case("C31", "widening gave no more connections",
         PortRangeWidening((32768, 61000), NARROW, NARROW, 0.01), R, ("did not give",)),
    Case("C31", "nothing counted", PortRangeWidening(None, None, None), R, ("no counts",)),
    # C15: per-connection cost next to TIME_WAITs, over each series' 0-TIME_WAIT baseline
    Case("C15", "this kernel: server side and client side in the default range x1.0; client "
         "side filling 94% of a narrowed range x5.9 (connect() searching past them)",
         TimeWaitCost((SERVER, CLIENT_DEFAULT, CLIENT_NARROW), 12, 100, 256), P,
         ("next to 3060", "x5.91 CPU", "connect() alone 13 -> 230 us", "noticeable: x1.5",
          "only with the TIME_WAITs on the client side (range 40000-43199",
          "not on the server side")),
    Case("C15", "x1.6 by both clocks at 3000 wherever they sat: noticeable at thousands",
         TimeWaitCost((CostSeries("server side", (BASE, CostLevel(3000, 75.2, 75.2))),
                       CLIENT_NARROW), 12, 100), C, ("x1.60 CPU", "wherever they sat")),
    Case("C15", "server side only, x1.6 at 3000 (no client series measured)",
         TimeWaitCost((CostSeries("server side", (BASE, CostLevel(3000, 75.2, 75.2),
                                                   CostLevel(20000, 90.0, 90.0))),), 12, 100),
         C, ("x1.60 CPU",)),
    Case("C15", "noticeable only at 20,000",
         TimeWaitCost((CostSeries("server side", (BASE, CostLevel(3000, 52.0, 52.0),
                                                   CostLevel(20000, 80.0, 80.0))),
                       CLIENT_DEFAULT), 12, 100), P, ("far beyond",)),
    Case("C15", "x1.49 at 3000 on the narrowed client range: just below the threshold",
         TimeWaitCost((SERVER, CostSeries("client side", (BASE, CostLevel(3000, 70.0, 70.0)))),
                      12, 100), R, ("x1.49", "not noticeable")),
    Case("C15", "x1.50 at 3000 on the client side: just at the threshold",
         TimeWaitCost((SERVER, CostSeries("client side", (BASE, CostLevel(3000, 70.5, 70.5)))),
                      12, 100), P, ("x1.50",)),
    Case("C15", "wall x2 at 3000 but CPU unchanged: a neighbour on our core, not a cost",
         TimeWaitCost((CostSeries("server side", (BASE, CostLevel(3000, 94.0, 48.0))),), 12, 100),
         R, ("x2.00 wall",)),
    Case("C15", "the client baseline held TIME_WAITs after its rounds: that series is not read",
         TimeWaitCost((SERVER, CostSeries("client side", (CostLevel(0, 45.0, 45.0, 12),
                                                          CostLevel(3000, 265.0, 265.0)))),
                      12, 100), R, ("no baseline (the baseline held 0/12", "not noticeable")),
    Case("C15", "every baseline already held TIME_WAITs",
         TimeWaitCost((CostSeries("server side", (CostLevel(300, 47.0, 47.0, 300),
                                                  CostLevel(3000, 90.0, 90.0))),), 12, 100),
         R, ("held 300/300", "no baseline to compare")),
    Case("C15", "a series with no level at all", TimeWaitCost((CostSeries("server side", ()),)),
         R, ("nothing measured", "no baseline")),
    Case("C15", "nothing measured", TimeWaitCost(()), R, ("no baseline",)),
]
