from remarket.shell import datadir


def make_tables(root):
    (root / "v1" / "tables" / "customers-0.db").mkdir(parents=True)


def test_unclean_stop_under_exactly_once_drops_local_tables(tmp_path):
    make_tables(tmp_path)
    assert datadir.prepare(tmp_path, exactly_once=True) is True
    assert not (tmp_path / "v1").exists()


def test_clean_stop_keeps_local_tables(tmp_path):
    make_tables(tmp_path)
    datadir.mark_clean_stop(tmp_path)
    assert datadir.prepare(tmp_path, exactly_once=True) is False
    assert (tmp_path / "v1" / "tables").exists()
    # the marker is consumed: a crash during this run must be detected at the next start
    assert datadir.prepare(tmp_path, exactly_once=True) is True


def test_at_least_once_keeps_local_tables_even_after_a_crash(tmp_path):
    make_tables(tmp_path)
    assert datadir.prepare(tmp_path, exactly_once=False) is False
    assert (tmp_path / "v1" / "tables").exists()


def test_first_start_has_nothing_to_drop(tmp_path):
    assert datadir.prepare(tmp_path / "new", exactly_once=True) is False
