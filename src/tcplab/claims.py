"""The claims, as data: the forty of the five articles, and those of the kernel's documentation.

The articles (``ARTICLES``) are widely copied blog posts about TCP states, CLOSE_WAIT and
TIME_WAIT; the project does not ship them. Each claim is what a scenario judges: its id,
the section of the ledger it belongs to, the articles that make it (by number, 000 to 004),
and a terse statement in our own words. A claim that no
experiment on this machine can settle carries ``unreproducible``: the one-line reason it
lands in the report's "not reproducible here" list instead of getting a verdict.

Nothing here is a verdict. Verdicts come only from a results file, measured in that run
(see ``tcplab.ledger``); which scenario judges which claim is read from each scenario's
``claims`` tuple at run time, never written down here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Article:
    """One of the five articles: its number, the file name it has in the claims list, its
    title (translated where the original is Chinese) and what kind of text it is."""

    number: str
    file: str
    title: str
    about: str


ARTICLES: dict[str, Article] = {a.number: a for a in (
    Article("000", "000_a5d694d67cf6e220.txt",
            "TCP status: the status of Close_Wait and Time_Wait",
            "a translated blog post: the eleven states, TIME_WAIT and CLOSE_WAIT, and sysctl "
            "advice (tw_reuse, tw_recycle, fin_timeout, keepalive, syncookies), plus Windows keys"),
    Article("001", "001_11b00f223669ae5d.txt",
            "11 states of a TCP connection",
            "a reposted blog post on the state machine, keepalive defaults, and keep-alive "
            "settings of F5, Apache and Java"),
    Article("002", "002_69728491adbfa35c.txt",
            "TCP connection states explained, and fixing too many TIME_WAIT (in Chinese)",
            "a Chinese blog post: why TIME_WAIT exists, MSL, and a list of sysctls to tune"),
    Article("003", "003_2ae9aa4e218ab5be.txt",
            "Troubleshoot excessive number of TCP connections",
            "a translated troubleshooting post on CLOSE_WAIT and FIN_WAIT2 leaks, lsof and "
            "keepalive"),
    Article("004", "004_f67ea08293e26e6c.txt",
            "CLOSE_WAIT, TIME_WAIT: key points of TCP state transitions (in Chinese)",
            "a short Chinese post: which side holds TIME_WAIT, server design, SO_LINGER"),
)}

STATES = "States and transitions"
TIME_WAIT = "TIME_WAIT"
CLOSE_WAIT = "CLOSE_WAIT and FIN_WAIT2"
TUNING = "Kernel tuning"
OBSERVATION = "Observation"
KERNEL_DOCS = "Beyond the articles: the kernel's documentation"
LIBRARIES = "Real libraries: the leaks people hit in Python's HTTP and database stack"

#: Where the K claims come from: the kernel's own description of its sysctls.
IP_SYSCTL = "Documentation/networking/ip-sysctl.rst"

#: Ledger sections, in the order of the claims list.
SECTIONS = (STATES, TIME_WAIT, CLOSE_WAIT, TUNING, OBSERVATION, KERNEL_DOCS, LIBRARIES)


@dataclass(frozen=True)
class Claim:
    """One checkable statement: of the articles (C01..C40, ``seed_ids`` name them), of the
    kernel's documentation for tunables operators change (K01.., ``source`` names it), or of
    a library's issue tracker about a leak its users hit (L01.., ``source`` names the issues)."""

    id: str
    section: str
    seed_ids: tuple[str, ...]
    statement: str
    #: Why no scenario on this machine can judge it; None if one can.
    unreproducible: str | None = None
    #: The document a claim comes from when it is not one of the articles.
    source: str | None = None

    @property
    def origin(self) -> str:
        """Where the claim comes from, for tables: article numbers, or the document."""
        return ", ".join(self.seed_ids) or (self.source or "")

    @property
    def cited(self) -> str:
        """Where the claim comes from, as the README's table says it: the article numbers,
        the kernel document, or the library's tracker issues."""
        if self.seed_ids:
            return self.origin
        where = "kernel docs" if self.section == KERNEL_DOCS else "tracker"
        return f"{where} (`{self.source}`)"

    @property
    def seeds(self) -> tuple[str, ...]:
        """The articles' file names that make the claim (``000_a5d694d67cf6e220.txt``, ...)."""
        return tuple(ARTICLES[s].file for s in self.seed_ids)


def _c(id: str, section: str, seeds: str, statement: str,
       unreproducible: str | None = None) -> Claim:
    return Claim(id, section, tuple(seeds.split()), statement, unreproducible)


CLAIMS: tuple[Claim, ...] = (
    _c("C01", STATES, "000 001 002 003",
       "There are eleven TCP states, and every one of them can be produced and seen."),
    _c("C02", STATES, "000 002 003",
       "A graceful close is four segments: the first closer passes FIN_WAIT1, FIN_WAIT2, "
       "TIME_WAIT; its peer CLOSE_WAIT then LAST_ACK."),
    _c("C03", STATES, "000 003",
       "The passive side's kernel acknowledges the FIN on its own; the application reads EOF and "
       "has to close() to send its FIN."),
    _c("C04", STATES, "002 003",
       "Opening takes three segments (SYN+ACK ride together), closing four (ACK and FIN usually "
       "travel separately)."),
    _c("C05", STATES, "002 003",
       "FIN_WAIT1 receiving FIN and ACK in one segment jumps to TIME_WAIT without FIN_WAIT2."),
    _c("C06", STATES, "002 003",
       "Simultaneous close: both ends see the other's FIN before their own is acknowledged, "
       "and pass through CLOSING."),
    _c("C07", STATES, "002 003",
       "SYN_RECV is brief; it lingers only when the client never sends the handshake's last ACK."),
    _c("C08", STATES, "002 003", "FIN_WAIT1 is seldom observed; FIN_WAIT2 is observed more often."),
    _c("C09", STATES, "002 003",
       "In FIN_WAIT2 the connection is half closed: the peer that has not closed can still send, "
       "and its data is delivered."),
    _c("C10", TIME_WAIT, "000 001 002 004", "TIME_WAIT is held only by the end that closes first."),
    _c("C11", TIME_WAIT, "000 002 004",
       "TIME_WAIT lasts 2 MSL; the figures quoted range from 60 s to 240 s (1 to 4 minutes)."),
    _c("C12", TIME_WAIT, "000 002 003",
       "TIME_WAIT exists to resend a lost final ACK; a closed end would answer the peer's "
       "retransmitted FIN with a reset."),
    _c("C13", TIME_WAIT, "000 002",
       "TIME_WAIT stops stray segments of an old connection from being accepted by a new one on "
       "the same four-tuple."),
    _c("C14", TIME_WAIT, "004",
       "Servers should let clients close first, so TIME_WAIT piles up on the clients."),
    _c("C15", TIME_WAIT, "000", "A few thousand TIME_WAIT sockets cost measurable CPU."),
    _c("C16", TIME_WAIT, "004 002",
       "Too many TIME_WAIT or CLOSE_WAIT sockets can stop a host from opening or accepting "
       "connections."),
    _c("C17", TIME_WAIT, "001",
       "One request per connection accumulates TIME_WAIT; persistent (keep-alive) connections "
       "avoid it."),
    _c("C18", CLOSE_WAIT, "000 003 004",
       "CLOSE_WAIT sits on the passively closed side and stays until the application calls "
       "close(): an application bug."),
    _c("C19", CLOSE_WAIT, "003",
       "The typical leak: code returns on EOF or on an error without closing the socket."),
    _c("C20", CLOSE_WAIT, "003",
       "The leak shows as a pair: FIN_WAIT2 on one end, CLOSE_WAIT on the other."),
    _c("C21", CLOSE_WAIT, "000",
       "An HTTP client that never closes response bodies leaves CLOSE_WAIT behind and, with a "
       "pool, runs out of connections."),
    _c("C22", CLOSE_WAIT, "003",
       "CLOSE_WAIT lasts two hours or more; a hostile peer can pile them up until the server "
       "is exhausted."),
    _c("C23", CLOSE_WAIT, "000 003",
       "Keepalive lets the kernel clean up CLOSE_WAIT; shorter keepalive settings clean up "
       "sooner."),
    _c("C24", CLOSE_WAIT, "003",
       "lsof names the process holding CLOSE_WAIT sockets; killing it frees them all."),
    _c("C25", CLOSE_WAIT, "003",
       "Without the peer's FIN, FIN_WAIT2 never times out and can accumulate until the system "
       "fails."),
    _c("C26", CLOSE_WAIT, "002",
       "tcp_fin_timeout bounds how long a socket we closed stays in FIN_WAIT2."),
    _c("C27", CLOSE_WAIT, "000",
       "tcp_fin_timeout sets the TIME_WAIT duration (at odds with C26)."),
    _c("C28", TUNING, "000 002",
       "tcp_tw_reuse=1 lets new connections reuse TIME_WAIT sockets; the default is 0."),
    _c("C29", TUNING, "000 002",
       "tcp_tw_recycle=1 enables fast recycling of TIME_WAIT sockets; the default is 0."),
    _c("C30", TUNING, "002",
       "tcp_max_tw_buckets caps TIME_WAIT sockets; beyond it they are destroyed with a warning; "
       "default 180000."),
    _c("C31", TUNING, "002",
       "ip_local_port_range defaults to 32768-61000; widening it to 1024-65000 permits more "
       "outgoing connections."),
    _c("C32", TUNING, "000 002",
       "tcp_syncookies=1 answers SYN-queue overflow with cookies against small floods; "
       "default 0."),
    _c("C33", TUNING, "002",
       "tcp_max_syn_backlog (default 1024, suggested 8192) is how many half-open connections "
       "may wait."),
    _c("C34", TUNING, "001 002 003",
       "Keepalive defaults: 7200 s idle, 75 s between probes, 9 probes, so a dead peer is "
       "dropped ~11 minutes after probing begins."),
    # The claims list gives article 000 (lowering keepalive clears CLOSE_WAIT sooner); the
    # example values 30 s / 2 probes / 2 s are article 003's commands.
    _c("C35", TUNING, "000 003",
       "Smaller keepalive settings (e.g. 30 s, 2 probes, 2 s apart) make dead connections go "
       "away sooner."),
    _c("C36", TUNING, "004",
       "SO_LINGER with timeout 0 skips TIME_WAIT but resets the connection and may lose unsent "
       "data, so it is discouraged."),
    _c("C37", TUNING, "000",
       "Windows registry keys TcpTimedWaitDelay, KeepAliveTime, KeepAliveInterval, "
       "TcpMaxDataRetransmissions.",
       unreproducible="Windows registry keys: a Windows TCP stack setting, not a Linux kernel "
       "behaviour; this lab runs on Linux only"),
    _c("C38", TUNING, "001",
       "Defaults of an F5 load balancer, Apache 2.0 keep-alive and Java 1.6 HTTP keep-alive.",
       unreproducible="defaults of F5, Apache 2.0 and Java 1.6: products that are not on this "
       "machine, so their defaults cannot be measured here"),
    _c("C39", TUNING, "001",
       "A server that drops idle keep-alive connections at its timeout closes first, so it "
       "holds the TIME_WAIT."),
    _c("C40", OBSERVATION, "002 003",
       "netstat -n with awk counts connections per state; netstat -a / lsof -i show each "
       "socket's state and owner."),
)



def _k(id: str, statement: str) -> Claim:
    return Claim(id, KERNEL_DOCS, (), statement, source=IP_SYSCTL)


#: Tunables operators change for connection lifecycles, beyond the articles: each claim is
#: the kernel documentation's description, in our words, judged like the articles' claims.
KERNEL_CLAIMS: tuple[Claim, ...] = (
    _k("K01", "tcp_syn_retries (default 6) is how many times connect() retransmits an "
              "unanswered SYN before it fails; with tcp_syn_linear_timeouts (default 4) the "
              "first retransmissions keep the initial 1 s timeout, then it doubles (about "
              "67 s to the last one with the defaults)."),
    _k("K02", "tcp_synack_retries (default 5) is how many times a listener retransmits the "
              "SYN-ACK of a half-open connection: about 31 s to the last one, and the attempt "
              "times out after about 63 s."),
    _k("K03", "tcp_retries2 (default 15) bounds how long unacknowledged data is retransmitted "
              "to a peer that vanished before the connection is killed: the time N doubling "
              "retransmissions from a 200 ms RTO would take (924.6 s at 15) is a lower bound, "
              "the kill comes at the first RTO past it; the TCP_USER_TIMEOUT socket option "
              "(tcp(7)) sets that time per socket."),
    _k("K04", "tcp_orphan_retries bounds, like tcp_retries2, the retransmissions of a socket "
              "the application closed (an orphan) to a peer that does not answer; its default "
              "is 8, which the sysctl shows as 0."),
    _k("K05", "tcp_abort_on_overflow=1 resets new connections when the listening application "
              "is too slow to accept them (its accept queue full); with the default 0 they are "
              "not reset, and a connection that overflowed in a burst recovers."),
    _k("K06", "net.core.somaxconn caps the backlog an application passes to listen() "
              "(default 4096; 128 before Linux 5.4)."),
    Claim("K07", KERNEL_DOCS, (), "tcp_max_orphans caps the orphaned sockets (closed by "
          "their application) the system holds; past it, orphans are reset at once and a "
          "warning is printed.", source=IP_SYSCTL, unreproducible="tcp_max_orphans is one "
          "limit for the whole machine, not per network namespace (a fresh namespace has no "
          "such sysctl), so testing it means writing the host's value, or holding more "
          "orphans than it allows, which would reset every other orphan on the machine"),
    _k("K08", "tcp_tw_reuse_delay (Linux 6.14+, default 1000 ms) is how long a TIME_WAIT socket "
              "must exist before tcp_tw_reuse lets a new connection take its four-tuple; the "
              "wait is never shorter than the setting."),
    _k("K09", "tcp_rfc1337=1 makes TCP follow RFC 1337 (a TIME_WAIT socket ignores a reset); "
              "with the default 0, the document says, TCP does not follow the RFC but still "
              "prevents TIME_WAIT assassination."),
)



def _l(id: str, source: str, statement: str) -> Claim:
    return Claim(id, LIBRARIES, (), statement, source=source)


#: Leaks reported against real Python libraries, each in our words from the issues its
#: ``source`` names; a ``realworld`` scenario runs the library's own code on loopback (and
#: its fix), and a judge decides on the states the kernel shows.
LIBRARY_CLAIMS: tuple[Claim, ...] = (
    _l("L01", "urllib3 #2100, #1301, #3189",
       "urllib3's connection pool (and a requests Session on it) keeps idle connections that "
       "the server closed after its keep-alive timeout: their client ends stay in CLOSE_WAIT, "
       "held by the client's fds, at most pool_maxsize per host; a request frees only the "
       "connection it checks out (urllib3 finds it dropped and connects anew), and closing "
       "the pool frees them all."),
    _l("L02", "requests #3461, PR #3462; urllib3 #659",
       "With pool_block=True, a requests stream=True response keeps its pooled connection "
       "until it is released: while pool_maxsize such responses are neither read to the end "
       "nor closed, the next request waits without end, and once the server closes those "
       "connections the client's ends sit in CLOSE_WAIT with the unread body; closing a "
       "response releases its connection (requests #3461 reported that closing an unread "
       "one did not)."),
    _l("L03", "CPython gh-114914, gh-104344, gh-109538",
       "An asyncio streams server whose handler returns without writer.close() never closes "
       "that connection: the protocol keeps the StreamWriter alive, so it is never "
       "collected, the server's end sits in CLOSE_WAIT once the client closes, and "
       "Server.wait_closed() then waits for good."),
    _l("L04", "uvicorn PR #1192, #1199",
       "uvicorn arms its keep-alive timeout only when a response completes, so a client that "
       "connects and never sends a request is never timed out: the server keeps its end "
       "ESTABLISHED for as long as the client stays (PR #1192, which would arm the timer "
       "when the connection is made, was not merged)."),
    _l("L05", "gunicorn #2707, #2781",
       "gunicorn's sync worker serves one connection at a time and reads it with no timeout "
       "of its own: a client that connects and sends nothing holds the worker until the "
       "arbiter replaces it after --timeout, and the clients queued behind it that give up "
       "meanwhile leave their server ends in CLOSE_WAIT in the listen queue, owned by no "
       "process, until then (our explanation of #2707's pile of CLOSE_WAIT, where no cause "
       "was found); the gthread worker keeps serving them, and closes a client that never "
       "sends a request (#2781)."),
    _l("L06", "redis-py #306, #1235, #1364, PR #886",
       "redis-py's connection pool never reaps idle connections: those the Redis server "
       "closed after its `timeout` stay in CLOSE_WAIT, held by the application, until the "
       "pool hands each out again (it then finds it closed and reconnects quietly, one per "
       "checkout); closing the pool's idle connections (pool.disconnect) frees them all."),
    _l("L07", "aiohttp #1115, #3736, #1925, PR #11074",
       "aiohttp's ClientSession.close() returns before the sockets of its connections are "
       "closed: their transports close on a later turn of the event loop (over TLS, after a "
       "shutdown exchange with the server), so a loop that stops or blocks right after "
       "close() leaves them open (the 'unclosed transport' warnings of #1115 and #3736)."),
    _l("L08", "httpx #95",
       "httpx's pool (httpcore) keeps idle connections that the server closed after its "
       "keep-alive timeout: their client ends stay in CLOSE_WAIT, held by the client, until "
       "the next request to that origin finds them readable, closes every such idle "
       "connection and is sent on a new one; closing the client closes them too."),
    _l("L09", "psycopg #584",
       "psycopg_pool keeps idle connections that PostgreSQL closed through "
       "idle_session_timeout in CLOSE_WAIT and hands them out, so the next query fails; a "
       "max_lifetime shorter than the server's timeout does not help, as the pool looks at a "
       "connection's age only when it comes back; a pool that checks connections before "
       "handing them out (check=ConnectionPool.check_connection) replaces them."),
    _l("L10", "grpc #42125, PR #43121",
       "Closing a grpc.aio channel while a bidirectional stream's reader task is being "
       "cancelled (cancel() called, not awaited) leaves the channel's TCP connection "
       "ESTABLISHED after close() returned, out of reach of the program: nothing it can "
       "still do closes it; awaiting the cancelled reader before close() avoids it."),
    _l("L11", "aiohttp #4805, #8184, PR #8200",
       "After an aiohttp client's ws.close(), the server's end of the websocket connection "
       "stays in CLOSE_WAIT for seconds (about 10 s in #4805), because the server does not "
       "close the connection after the close handshake while its handler still runs (#8184)."),
    _l("L12", "uvicorn #1199, PRs #1332, #1354, #1355",
       "uvicorn leaves the server's end of a connection that the client closed before "
       "sending anything (a load balancer's TCP health check) in CLOSE_WAIT for good."),
    _l("L13", "python/asyncio #466; aiohttp #1115",
       "asyncio's StreamWriter.close() (a transport's close()) only starts the close: the "
       "socket is closed and its FIN sent the next time the event loop runs, and await "
       "writer.wait_closed() returns once that has happened (one more turn of the loop, by "
       "design)."),
)

CLAIMS = CLAIMS + KERNEL_CLAIMS + LIBRARY_CLAIMS

BY_ID: dict[str, Claim] = {c.id: c for c in CLAIMS}


def get(claim_id: str) -> Claim:
    """The claim ``claim_id`` (``KeyError`` if there is none: C01..C40, K01.., L01..)."""
    return BY_ID[claim_id]
