"""The cache backends behind one interface: MemoryCache, DiskCache (LMDB), RedisCache (a real
redis-server on loopback)."""
import os
import pickle
import subprocess
import sys
import threading
import time

import pytest

import daft_flow as dflow
from children import child_env
from daft_flow.cache import CacheError


@pytest.fixture(params=["memory", "disk", "redis"])
def cache(request, tmp_path):
    if request.param == "memory":
        yield dflow.MemoryCache()
    elif request.param == "disk":
        yield dflow.DiskCache(tmp_path / "c")
    else:
        c = dflow.RedisCache(request.getfixturevalue("redis_url"), namespace=f"t{os.getpid()}{time.time_ns()}")
        yield c
        c.clear()


def key(op: int, row: int) -> bytes:
    return op.to_bytes(16, "big") + row.to_bytes(16, "big")


def test_put_get_delete_clear_and_stats(cache):
    cache.check()
    items = [(key(1, i), f"value {i}".encode()) for i in range(100)] + [(key(2, 0), b"")]
    cache.put_many(items, wait=True)
    got = cache.get_many([key(1, 5), key(1, 1000), key(2, 0)])
    assert got == [b"value 5", None, b""]  # an empty value is a value, not a miss
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.writes) == (2, 1, 101)
    assert stats.bytes_read == len(b"value 5")
    assert cache.delete_prefix((1).to_bytes(16, "big")) == 100
    assert cache.get_many([key(1, 5), key(2, 0)]) == [None, b""]
    assert cache.clear() == 1
    assert cache.get_many([key(2, 0)]) == [None]


def test_ttl_expires_entries(request, tmp_path):
    caches = [dflow.MemoryCache(ttl=0.3), dflow.DiskCache(tmp_path / "ttl", ttl=0.3)]
    if request.config.getoption("-m") != "no_extras":
        try:
            caches.append(dflow.RedisCache(request.getfixturevalue("redis_url"), ttl=0.3, namespace="ttl"))
        except pytest.skip.Exception:
            pass
    for c in caches:
        c.put_many([(key(1, 1), b"x")], wait=True)
        assert c.get_many([key(1, 1)]) == [b"x"]
    time.sleep(0.45)
    for c in caches:
        assert c.get_many([key(1, 1)]) == [None], c
    assert caches[1].stats().expired == 1


def test_memory_cache_evicts_least_recently_used_under_its_cap():
    c = dflow.MemoryCache(max_size=100_000)
    for start in range(0, 400, 20):
        c.put_many([(key(1, i), bytes(1000)) for i in range(start, start + 20)])
        c.get_many([key(1, 0)])  # the first entry, used again and again
        assert c.size <= 100_000
    assert c.get_many([key(1, 0), key(1, 1), key(1, 399)]) == [bytes(1000), None, bytes(1000)]
    assert c.stats().evictions > 0


def test_disk_cache_stays_within_ten_percent_of_its_cap_and_keeps_what_was_used(tmp_path):
    cap = 2_000_000
    c = dflow.DiskCache(tmp_path / "lru", max_size=cap)
    keep = [(key(9, i), os.urandom(2000)) for i in range(50)]
    c.put_many(keep, wait=True)
    sizes, disk = [], []
    for round_ in range(10):  # 10 rounds of 1 MB: five times the cap
        c.put_many([(key(1, round_ * 500 + i), os.urandom(2000)) for i in range(500)], wait=True)
        c.get_many([k for k, _ in keep])  # used every round: never the least recently used
        c.flush()
        sizes.append(c.size)
        disk.append(c.disk_usage())
    assert max(disk) <= cap * 1.1, disk  # the file itself: LMDB reuses the pages evictions free
    assert max(sizes) <= cap and sizes[-1] >= cap * 0.5, sizes  # the entries (as their pages count)
    assert c.get_many([k for k, _ in keep]) == [v for _, v in keep]
    assert c.stats().evictions > 0


def test_a_second_process_reads_what_the_first_wrote(tmp_path):
    c = dflow.DiskCache(tmp_path / "shared")
    c.put_many([(key(1, 1), b"from parent")], wait=True)
    code = ("import sys, daft_flow as dflow; c = dflow.DiskCache(sys.argv[1]); "
            "print(c.get_many([bytes(15) + b'\\x01' + bytes(15) + b'\\x01'])[0].decode()); "
            "c.put_many([(b'x' * 32, b'from child')], wait=True)")
    out = subprocess.run([sys.executable, "-P", "-c", code, str(tmp_path / "shared")], capture_output=True, text=True,
                         check=True, env=child_env())
    assert out.stdout.strip() == "from parent"
    assert c.get_many([b"x" * 32]) == [b"from child"]


def test_waiting_for_another_process_s_write_lock_does_not_hold_the_gil(tmp_path):
    path = str(tmp_path / "locked")
    c = dflow.DiskCache(path)
    c.put_many([(key(1, 1), b"a")], wait=True)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time, lmdb; env = lmdb.open(sys.argv[1], map_size=1 << 30, max_dbs=4); "
        "txn = env.begin(write=True); print('locked', flush=True); time.sleep(1.0); txn.abort()"), path],
        stdout=subprocess.PIPE, text=True, env=child_env())
    try:
        assert holder.stdout.readline().strip() == "locked"
        ticks = 0
        done = threading.Event()

        def tick() -> None:
            nonlocal ticks
            while not done.is_set():
                ticks += 1
                time.sleep(0.001)

        ticker = threading.Thread(target=tick)
        ticker.start()
        c.put_many([(key(1, 2), b"b")])  # handed to the writer thread, which waits for the lock
        assert c.get_many([key(1, 1)]) == [b"a"]  # readers never wait for writers
        c.flush()  # returns once the other process let go and the write is stored
        done.set()
        ticker.join()
        assert ticks > 100  # this thread ran the whole time: the waits released the GIL
        assert c.get_many([key(1, 2)]) == [b"b"]
    finally:
        holder.wait(timeout=10)
        holder.stdout.close()


def test_an_unusable_disk_cache_location_is_a_clear_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(CacheError, match="a-file"):
        dflow.DiskCache(blocker / "cache").check()


def test_an_unreachable_redis_is_a_clear_error_that_names_it_without_its_password():
    c = dflow.RedisCache("redis://:hunter22@127.0.0.1:1/0", timeout=0.5)
    with pytest.raises(CacheError) as e:
        c.check()
    assert "127.0.0.1:1" in str(e.value) and "hunter22" not in str(e.value) and "does not answer" in str(e.value)
    assert "hunter22" not in repr(c)
    with pytest.raises(TypeError, match="password_env"):
        pickle.dumps(c)  # a plan must not carry the password


def test_caches_travel_as_their_settings(tmp_path, redis_url, monkeypatch):
    disk = dflow.DiskCache(tmp_path / "d", max_size="1GB", ttl=60)
    disk.put_many([(key(1, 1), b"v")], wait=True)
    back = pickle.loads(pickle.dumps(disk))
    assert (back.path, back.max_size, back.ttl) == (disk.path, 10**9, 60.0)
    assert back.get_many([key(1, 1)]) == [b"v"]  # the same store, opened again
    mem = pickle.loads(pickle.dumps(dflow.MemoryCache(max_size=1000)))
    assert mem.max_size == 1000 and len(mem) == 0
    monkeypatch.setenv("DFLOW_TEST_REDIS_PW", "")
    red = pickle.loads(pickle.dumps(dflow.RedisCache(redis_url, password_env="DFLOW_TEST_REDIS_PW")))
    assert red.password_env == "DFLOW_TEST_REDIS_PW"


def test_bad_settings_are_clear_errors():
    with pytest.raises(ValueError, match="max_size"):
        dflow.MemoryCache(max_size="lots")
    with pytest.raises(ValueError, match="ttl"):
        dflow.DiskCache("/tmp/x", ttl=-1)
    with pytest.raises(ValueError, match="namespace"):
        dflow.RedisCache("redis://127.0.0.1:6379/0", namespace="a:b")
    with pytest.raises(TypeError, match="set_cache"):
        dflow.set_cache("memory")
