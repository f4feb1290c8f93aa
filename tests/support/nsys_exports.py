"""nsys-schema SQLite exports BUILT from a REAL vLLM torch trace.

No real nsys export of a GPU run can be made here (no NVIDIA GPU): `build_nsys_sqlite_from_torch`
writes an SQLite file to NVIDIA's documented export schema ("SQLite Schema Reference", Nsight
Systems 2026.4, export schema 3.28.1; `NSYS_SCHEMA_DDL` copies the documented columns of each
table used) and fills it from the GPU activity of a real torch trace: real kernel names, times
(µs -> ns), streams, correlation ids, CUDA API calls and the engine's step ranges as NVTX
push/pop ranges. The nsys reader must then give the same answers as the torch reader.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from pytest_vllm_profile.trace.torch_reader import read_torch_trace

# Documented DDL (columns and constraints as in NVIDIA's SQLite Schema Reference, 3.28.1).
NSYS_SCHEMA_DDL = """
CREATE TABLE StringIds (id INTEGER NOT NULL PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE META_DATA_EXPORT (name TEXT NOT NULL, value TEXT);
CREATE TABLE TARGET_INFO_SESSION_START_TIME (utcEpochNs INTEGER, utcTime TEXT, localTime TEXT,
    systemClockNs INTEGER, sessionStartCntVctNs INTEGER);
CREATE TABLE TARGET_INFO_GPU (vmId INTEGER NOT NULL, id INTEGER NOT NULL, name TEXT, busLocation TEXT,
    isDiscrete INTEGER, l2CacheSize INTEGER, totalMemory INTEGER, memoryBandwidth INTEGER, clockRate INTEGER,
    smCount INTEGER, pwGpuId INTEGER, uuid TEXT, luid INTEGER, chipName TEXT, cuDevice INTEGER,
    ctxswDevPath TEXT, ctrlDevPath TEXT, revision INTEGER, nodeMask INTEGER, constantMemory INTEGER,
    maxIPC INTEGER, maxRegistersPerBlock INTEGER, maxShmemPerBlock INTEGER, maxShmemPerBlockOptin INTEGER,
    maxShmemPerSm INTEGER, maxRegistersPerSm INTEGER, threadsPerWarp INTEGER, asyncEngines INTEGER,
    maxWarpsPerSm INTEGER, maxBlocksPerSm INTEGER, maxThreadsPerBlock INTEGER, maxBlockDimX INTEGER,
    maxBlockDimY INTEGER, maxBlockDimZ INTEGER, maxGridDimX INTEGER, maxGridDimY INTEGER, maxGridDimZ INTEGER,
    computeMajor INTEGER, computeMinor INTEGER, smMajor INTEGER, smMinor INTEGER, numaNodeId INTEGER);
CREATE TABLE TARGET_INFO_CUDA_DEVICE (gpuId INTEGER, cudaId INTEGER NOT NULL, pid INTEGER NOT NULL, uuid TEXT,
    numMultiprocessors INTEGER);
CREATE TABLE CUPTI_ACTIVITY_KIND_MEMCPY (start INTEGER NOT NULL, end INTEGER NOT NULL, deviceId INTEGER NOT NULL,
    contextId INTEGER NOT NULL, greenContextId INTEGER, streamId INTEGER NOT NULL, correlationId INTEGER,
    globalPid INTEGER, bytes INTEGER NOT NULL, copyKind INTEGER NOT NULL, deprecatedSrcId INTEGER, srcKind INTEGER,
    dstKind INTEGER, srcDeviceId INTEGER, srcContextId INTEGER, dstDeviceId INTEGER, dstContextId INTEGER,
    migrationCause INTEGER, graphNodeId INTEGER, virtualAddress INTEGER, copyCount INTEGER);
CREATE TABLE CUPTI_ACTIVITY_KIND_MEMSET (start INTEGER NOT NULL, end INTEGER NOT NULL, deviceId INTEGER NOT NULL,
    contextId INTEGER NOT NULL, greenContextId INTEGER, streamId INTEGER NOT NULL, correlationId INTEGER,
    globalPid INTEGER, value INTEGER NOT NULL, bytes INTEGER NOT NULL, graphNodeId INTEGER, memKind INTEGER);
CREATE TABLE CUPTI_ACTIVITY_KIND_KERNEL (start INTEGER NOT NULL, end INTEGER NOT NULL, deviceId INTEGER NOT NULL,
    contextId INTEGER NOT NULL, greenContextId INTEGER, streamId INTEGER NOT NULL, correlationId INTEGER,
    globalPid INTEGER, demangledName INTEGER NOT NULL, shortName INTEGER NOT NULL, mangledName INTEGER,
    launchType INTEGER, cacheConfig INTEGER, registersPerThread INTEGER NOT NULL, gridX INTEGER NOT NULL,
    gridY INTEGER NOT NULL, gridZ INTEGER NOT NULL, blockX INTEGER NOT NULL, blockY INTEGER NOT NULL,
    blockZ INTEGER NOT NULL, staticSharedMemory INTEGER NOT NULL, dynamicSharedMemory INTEGER NOT NULL,
    localMemoryPerThread INTEGER NOT NULL, localMemoryTotal INTEGER NOT NULL, gridId INTEGER NOT NULL,
    sharedMemoryExecuted INTEGER, graphNodeId INTEGER, sharedMemoryLimitConfig INTEGER, qmdBulkReleaseDone INTEGER,
    qmdPreexitDone INTEGER, qmdLastCtaDone INTEGER, graphId INTEGER, clusterX INTEGER, clusterY INTEGER,
    clusterZ INTEGER, clusterSchedulingPolicy INTEGER, maxPotentialClusterSize INTEGER, maxActiveClusters INTEGER,
    sharedMemoryRequestedPercentage INTEGER, tensorSizeMinusOneElements TEXT NOT NULL);
CREATE TABLE CUPTI_ACTIVITY_KIND_RUNTIME (start INTEGER NOT NULL, end INTEGER NOT NULL, eventClass INTEGER NOT NULL,
    globalTid INTEGER, correlationId INTEGER, nameId INTEGER NOT NULL, returnValue INTEGER NOT NULL,
    callchainId INTEGER);
CREATE TABLE NVTX_EVENTS (start INTEGER NOT NULL, end INTEGER, eventType INTEGER NOT NULL, rangeId INTEGER,
    category INTEGER, color INTEGER, text TEXT, globalTid INTEGER, endGlobalTid INTEGER, textId INTEGER,
    domainId INTEGER, uint64Value INTEGER, int64Value INTEGER, doubleValue REAL, uint32Value INTEGER,
    int32Value INTEGER, floatValue REAL, jsonTextId INTEGER, jsonText TEXT, binaryData TEXT,
    eventId INTEGER NOT NULL PRIMARY KEY);
"""

NVTX_PUSH_POP = 59
# CUPTI enum values the exporter stores (CUpti_ActivityMemcpyKind, CUpti_ActivityMemoryKind).
MEMCPY_KIND = {"HtoD": 1, "DtoH": 2, "DtoD": 8, "HtoH": 9}
MEMORY_KIND = {"Pageable": 1, "Pinned": 2, "Device": 3}


def global_id(pid: int, tid: int = 0) -> int:
    """Serialized GlobalId as the exporter writes it: pid in bits 24..47, tid in bits 0..23."""
    return (pid << 24) | tid


class _Strings:
    def __init__(self) -> None:
        self.ids: dict[str, int] = {}

    def __call__(self, value: str) -> int:
        return self.ids.setdefault(value, len(self.ids) + 1)


def _ns(us: float) -> int:
    return int(round(us * 1000.0))


def build_nsys_sqlite_from_torch(torch_trace_path: Path, out: Path, *, tables: set[str] | None = None) -> Path:
    """An nsys-schema SQLite holding the GPU activity, CUDA API calls and step ranges of a real torch trace.

    tables: only create these data tables (None: all); for the missing-table tests.
    """
    trace = read_torch_trace(torch_trace_path)
    ev = trace.events
    cpu_pid = int(ev.loc[ev["category"] == "cuda_runtime", "pid"].iloc[0])  # the process that launched the work
    strings = _Strings()
    con = sqlite3.connect(out)
    con.executescript(NSYS_SCHEMA_DDL)
    con.execute("INSERT INTO META_DATA_EXPORT VALUES ('EXPORT_SCHEMA_VERSION', '3.28.1')")
    con.execute("INSERT INTO TARGET_INFO_SESSION_START_TIME (utcEpochNs) VALUES (?)", (trace.metadata.base_time_ns,))
    m = trace.metadata
    major, minor = (int(x) for x in m.device.compute_capability.split("."))
    con.execute(
        "INSERT INTO TARGET_INFO_GPU (vmId, id, name, totalMemory, smCount, cuDevice, computeMajor, computeMinor) "
        "VALUES (0, 0, ?, ?, ?, 0, ?, ?)",
        (m.device.name, m.device.memory_bytes, m.device.sm_count, major, minor),
    )
    con.execute("INSERT INTO TARGET_INFO_CUDA_DEVICE VALUES (0, 0, ?, NULL, ?)", (cpu_pid, m.device.sm_count))

    kernels = ev[ev["category"] == "kernel"]
    rows = []
    for i, k in enumerate(kernels.itertuples(index=False)):
        start = _ns(k.start_us)
        short = re.sub(r"^void ", "", k.name).split("<")[0].split("(")[0]
        rows.append(
            (
                start,
                start + _ns(k.dur_us),
                k.device,
                1,
                k.stream,
                k.correlation,
                global_id(cpu_pid),
                strings(k.name),
                strings(short),
                0,
                1,
                1,
                1,
                1,
                1,
                1,
                0,
                0,
                0,
                0,
                i,
                "",
            )
        )
    con.executemany(
        "INSERT INTO CUPTI_ACTIVITY_KIND_KERNEL (start, end, deviceId, contextId, streamId, correlationId, globalPid, "
        "demangledName, shortName, registersPerThread, gridX, gridY, gridZ, blockX, blockY, blockZ, staticSharedMemory, "
        "dynamicSharedMemory, localMemoryPerThread, localMemoryTotal, gridId, tensorSizeMinusOneElements) "
        "VALUES (" + ",".join("?" * 22) + ")",
        rows,
    )
    for r in ev[ev["category"] == "gpu_memcpy"].itertuples(index=False):
        kind, src, dst = re.fullmatch(r"Memcpy (\w+) \((\w+) -> (\w+)\)", r.name).groups()
        start = _ns(r.start_us)
        con.execute(
            "INSERT INTO CUPTI_ACTIVITY_KIND_MEMCPY (start, end, deviceId, contextId, streamId, correlationId, "
            "globalPid, bytes, copyKind, srcKind, dstKind) VALUES (?,?,?,1,?,?,?,0,?,?,?)",
            (
                start,
                start + _ns(r.dur_us),
                r.device,
                r.stream,
                r.correlation,
                global_id(cpu_pid),
                MEMCPY_KIND[kind],
                MEMORY_KIND[src],
                MEMORY_KIND[dst],
            ),
        )
    for r in ev[ev["category"] == "gpu_memset"].itertuples(index=False):
        mem = re.fullmatch(r"Memset \((\w+)\)", r.name).group(1)
        start = _ns(r.start_us)
        con.execute(
            "INSERT INTO CUPTI_ACTIVITY_KIND_MEMSET (start, end, deviceId, contextId, streamId, correlationId, "
            "globalPid, value, bytes, memKind) VALUES (?,?,?,1,?,?,?,0,0,?)",
            (start, start + _ns(r.dur_us), r.device, r.stream, r.correlation, global_id(cpu_pid), MEMORY_KIND[mem]),
        )
    for r in ev[ev["category"].isin(["cuda_runtime", "cuda_driver"])].itertuples(index=False):
        start = _ns(r.start_us)
        con.execute(
            "INSERT INTO CUPTI_ACTIVITY_KIND_RUNTIME (start, end, eventClass, globalTid, correlationId, nameId, "
            "returnValue) VALUES (?,?,0,?,?,?,0)",
            (start, start + _ns(r.dur_us), global_id(r.pid, r.tid), r.correlation, strings(r.name)),
        )
    for event_id, r in enumerate(ev[ev["category"] == "user_annotation"].itertuples(index=False)):
        start = _ns(r.start_us)
        con.execute(
            "INSERT INTO NVTX_EVENTS (start, end, eventType, text, globalTid, endGlobalTid, eventId) "
            "VALUES (?,?,?,?,?,?,?)",
            (
                start,
                start + _ns(r.dur_us),
                NVTX_PUSH_POP,
                r.name,
                global_id(r.pid, r.tid),
                global_id(r.pid, r.tid),
                event_id,
            ),
        )
    con.executemany("INSERT INTO StringIds VALUES (?, ?)", [(i, v) for v, i in strings.ids.items()])
    if tables is not None:
        data_tables = {
            "CUPTI_ACTIVITY_KIND_KERNEL",
            "CUPTI_ACTIVITY_KIND_MEMCPY",
            "CUPTI_ACTIVITY_KIND_MEMSET",
            "CUPTI_ACTIVITY_KIND_RUNTIME",
            "NVTX_EVENTS",
            "TARGET_INFO_GPU",
            "TARGET_INFO_CUDA_DEVICE",
            "META_DATA_EXPORT",
            "TARGET_INFO_SESSION_START_TIME",
            "StringIds",
        }
        for name in data_tables - tables:
            con.execute(f'DROP TABLE "{name}"')
    con.commit()
    con.close()
    return out
