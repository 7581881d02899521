"""Storage contract tests, run against every backend (the ``db`` fixture is SQLite, and
PostgreSQL when GARRISON_TEST_DATABASE_URL is set): the configs service's baseline and
differences, and the alerts checksum de-duplication at the service level."""

from __future__ import annotations

import datetime as dt
import uuid as uuidlib

import pytest
from sqlalchemy import func, select

from garrison.server.alerts import service as alerts
from garrison.server.alerts.models import Alert
from garrison.server.alerts.service import AlertReport
from garrison.server.audit.actor import SYSTEM
from garrison.server.configs import service as configs
from garrison.server.configs.models import ConfigBaseline, ConfigDifference
from garrison.server.errors import ForbiddenError, InvalidInputError, NotFoundError, UnknownJobError
from garrison.server.jobs import service as jobs
from garrison.server.stations import service as stations
from garrison.server.stations.models import Station
from garrison.server.stations.service import Identity
from garrison.server.store.engine import Database

AV = [("on-access:enabled", "1"), ("on-access:mount-points", "/home"), ("on-demand:archives", "0")]
AV_DICT = dict(AV)
DETECTED = dt.datetime(2017, 7, 14, 2, 41, 40, tzinfo=dt.UTC)
EICAR = AlertReport(
    threat_name="Eicar-Test-Signature",
    filepath="/tmp/scanme/eicar.com",
    action="none",
    module_name="clamav",
    detection_time=DETECTED,
)


def make_stations(db: Database, n: int) -> list[int]:
    ids = []
    with db.transaction() as session:
        for _ in range(n):
            station, _token, created = stations.enroll(
                session, Identity(uuid=str(uuidlib.uuid4()).upper()), None
            )
            assert created
            ids.append(station.id)
    return ids


def report(
    db: Database, station_id: int, pairs: list[tuple[str, str]], kind: str = "avconfig"
) -> int:
    with db.transaction() as session:
        return configs.report(session, station_id, kind, pairs)


def difference_rows(db: Database) -> list[tuple[int, str, str, str | None]]:
    with db.reading() as session:
        rows = session.execute(
            select(
                ConfigDifference.station_id,
                ConfigDifference.kind,
                ConfigDifference.attr,
                ConfigDifference.value,
            ).order_by(ConfigDifference.station_id, ConfigDifference.attr)
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


def effective(db: Database, station_id: int, kind: str = "avconfig") -> dict[str, str]:
    with db.reading() as session:
        return configs.effective(session, station_id, kind)


# -- configs: store only differences -------------------------------------------------------------


def test_first_report_becomes_the_baseline_and_costs_no_difference(db: Database) -> None:
    (sid,) = make_stations(db, 1)
    assert report(db, sid, AV) == 0
    with db.reading() as session:
        assert configs.baseline(session, "avconfig") == AV_DICT
        assert configs.baseline(session, "scheduler") == {}
        assert configs.differences(session, sid, "avconfig") == {}
    assert difference_rows(db) == []
    assert effective(db, sid) == AV_DICT


def test_a_thousand_identical_configs_cost_one_copy(db: Database) -> None:
    ids = make_stations(db, 1000)
    with db.transaction() as session:
        for sid in ids:
            assert configs.report(session, sid, "avconfig", list(reversed(AV))) == 0
    with db.reading() as session:
        assert session.scalar(select(func.count()).select_from(ConfigBaseline)) == 3
    assert difference_rows(db) == []
    assert effective(db, ids[-1]) == AV_DICT


def test_a_differing_station_stores_only_its_differing_attributes(db: Database) -> None:
    first, second = make_stations(db, 2)
    report(db, first, AV)
    assert report(db, second, [("on-access:enabled", "0"), *AV[1:]]) == 1
    assert difference_rows(db) == [(second, "avconfig", "on-access:enabled", "0")]
    assert effective(db, second) == {**AV_DICT, "on-access:enabled": "0"}
    assert effective(db, first) == AV_DICT


def test_a_missing_attribute_is_a_null_difference_and_not_effective(db: Database) -> None:
    first, lacking = make_stations(db, 2)
    report(db, first, AV)
    assert report(db, lacking, AV[:2]) == 1
    assert difference_rows(db) == [(lacking, "avconfig", "on-demand:archives", None)]
    assert effective(db, lacking) == dict(AV[:2])


def test_the_first_value_stays_the_baseline_when_its_station_changes(db: Database) -> None:
    first, second = make_stations(db, 2)
    report(db, first, AV)
    report(db, second, AV)
    assert report(db, first, [("on-access:enabled", "0"), *AV[1:]]) == 1
    with db.reading() as session:
        assert configs.baseline(session, "avconfig") == AV_DICT
    assert difference_rows(db) == [(first, "avconfig", "on-access:enabled", "0")]
    assert effective(db, first)["on-access:enabled"] == "0"
    assert effective(db, second) == AV_DICT


def test_reporting_again_replaces_the_differences(db: Database) -> None:
    first, second = make_stations(db, 2)
    report(db, first, AV)
    report(db, second, [("on-access:enabled", "0"), AV[1]])  # two differences
    assert len(difference_rows(db)) == 2
    report(db, second, [("on-access:enabled", "2"), *AV[1:]])
    assert difference_rows(db) == [(second, "avconfig", "on-access:enabled", "2")]
    report(db, second, AV)
    assert difference_rows(db) == []
    assert effective(db, second) == AV_DICT


def test_a_new_attribute_joins_the_baseline(db: Database) -> None:
    first, second = make_stations(db, 2)
    report(db, first, AV)
    assert report(db, second, [*AV, ("on-access:notify", "1")]) == 0
    with db.reading() as session:
        assert configs.baseline(session, "avconfig") == {**AV_DICT, "on-access:notify": "1"}
    assert effective(db, second) == {**AV_DICT, "on-access:notify": "1"}


def test_an_attribute_added_later_is_not_in_an_earlier_station_config(db: Database) -> None:
    first, second = make_stations(db, 2)
    report(db, first, AV)
    report(db, second, [*AV, ("on-access:notify", "1")])
    assert effective(db, first) == AV_DICT


def test_the_last_duplicate_attribute_wins(db: Database) -> None:
    (sid,) = make_stations(db, 1)
    report(db, sid, [("a", "1"), ("a", "2")])
    with db.reading() as session:
        assert configs.baseline(session, "avconfig") == {"a": "2"}


def test_kinds_are_separate(db: Database) -> None:
    first, second = make_stations(db, 2)
    report(db, first, [("x", "1")], kind="avconfig")
    report(db, second, [("x", "2")], kind="scheduler")
    report(db, first, [("x", "2")], kind="scheduler")
    with db.reading() as session:
        assert configs.baseline(session, "avconfig") == {"x": "1"}
        assert configs.baseline(session, "scheduler") == {"x": "2"}
    assert difference_rows(db) == []
    assert effective(db, first, "scheduler") == {"x": "2"}


def test_config_errors(db: Database) -> None:
    (sid,) = make_stations(db, 1)
    with db.transaction() as session, pytest.raises(InvalidInputError) as caught:
        configs.report(session, sid, "firewall", AV)
    assert caught.value.field == "kind"
    with db.transaction() as session, pytest.raises(InvalidInputError) as caught:
        configs.report(session, sid, "avconfig", [("", "1")])
    assert caught.value.message == "attr must be 1-255 characters"
    with db.transaction() as session, pytest.raises(InvalidInputError):
        configs.report(session, sid, "avconfig", [(f"a{i}", "1") for i in range(5001)])
    with db.reading() as session, pytest.raises(NotFoundError) as not_found:
        configs.effective(session, sid, "avconfig")
    assert not_found.value.message == f"station {sid} has not reported its avconfig yet"
    # Nothing half-written.
    with db.reading() as session:
        assert configs.baseline(session, "avconfig") == {}


def test_desired_config_is_replaced_as_a_whole(db: Database) -> None:
    with db.transaction() as session:
        configs.set_desired(session, SYSTEM, "avconfig", [("a", "1"), ("b", "2")])
    with db.transaction() as session:
        assert configs.set_desired(session, SYSTEM, "avconfig", [("b", "3")]) == {"b": "3"}
    with db.reading() as session:
        assert configs.desired(session, "avconfig") == {"b": "3"}
        assert configs.desired(session, "scheduler") == {}


# -- alerts: checksum de-duplication -------------------------------------------------------------


def alert_rows(db: Database) -> list[tuple[int, str, str]]:
    with db.reading() as session:
        rows = session.execute(
            select(Alert.station_id, Alert.filepath, Alert.checksum).order_by(Alert.id)
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


def ingest(db: Database, station_id: int, reports: list[AlertReport], av: str = "Armadito") -> None:
    with db.transaction() as session:
        alerts.ingest(session, station_id, av, reports)


def last_alert_at(db: Database, station_id: int) -> dt.datetime | None:
    with db.reading() as session:
        return session.scalar(select(Station.last_alert_at).where(Station.id == station_id))


def test_an_alert_is_stored_with_the_design_checksum(db: Database) -> None:
    (sid,) = make_stations(db, 1)
    ingest(db, sid, [EICAR])
    expected = alerts.checksum(EICAR.threat_name, EICAR.filepath, DETECTED, sid, "Armadito")
    assert alert_rows(db) == [(sid, "/tmp/scanme/eicar.com", expected)]
    with db.reading() as session:
        stored = session.scalars(select(Alert)).one()
        assert (stored.detection_time, stored.antivirus, stored.job_id) == (
            DETECTED,
            "Armadito",
            None,
        )


def test_a_repeated_alert_is_one_row_but_moves_last_alert_time(db: Database) -> None:
    (sid,) = make_stations(db, 1)
    assert last_alert_at(db, sid) is None
    ingest(db, sid, [EICAR])
    first = last_alert_at(db, sid)
    ingest(db, sid, [EICAR])
    second = last_alert_at(db, sid)
    assert len(alert_rows(db)) == 1
    assert first is not None
    assert second is not None
    assert second > first


def test_same_second_other_microsecond_or_timezone_is_the_same_alert(db: Database) -> None:
    (sid,) = make_stations(db, 1)
    paris = dt.timezone(dt.timedelta(hours=2))
    ingest(
        db,
        sid,
        [
            EICAR,
            AlertReport(
                EICAR.threat_name, EICAR.filepath, detection_time=DETECTED.astimezone(paris)
            ),
            AlertReport(
                EICAR.threat_name, EICAR.filepath, detection_time=DETECTED.replace(microsecond=5)
            ),
        ],
    )
    assert len(alert_rows(db)) == 1


def test_alerts_differing_in_one_checksum_field_are_distinct(db: Database) -> None:
    first, second = make_stations(db, 2)
    ingest(db, first, [EICAR])
    ingest(db, second, [EICAR])  # another agent
    ingest(db, first, [EICAR], av="ClamAV")  # another antivirus
    ingest(db, first, [AlertReport("Other", EICAR.filepath, detection_time=DETECTED)])
    ingest(db, first, [AlertReport(EICAR.threat_name, "/tmp/x", detection_time=DETECTED)])
    later = DETECTED + dt.timedelta(seconds=1)
    ingest(db, first, [AlertReport(EICAR.threat_name, EICAR.filepath, detection_time=later)])
    rows = alert_rows(db)
    assert len(rows) == 6
    assert len({r[2] for r in rows}) == 6


def test_an_alert_without_detection_time_takes_the_receive_time(db: Database) -> None:
    (sid,) = make_stations(db, 1)
    before = dt.datetime.now(dt.UTC)
    ingest(db, sid, [AlertReport(EICAR.threat_name, EICAR.filepath)])
    after = dt.datetime.now(dt.UTC)
    with db.reading() as session:
        stored = session.scalars(select(Alert)).one()
    assert before <= stored.detection_time <= after
    assert stored.detection_time == stored.received_at
    assert stored.checksum == alerts.checksum(
        EICAR.threat_name, EICAR.filepath, stored.detection_time, sid, "Armadito"
    )


def test_a_failed_ingest_writes_nothing(db: Database) -> None:
    first, second = make_stations(db, 2)
    with db.transaction() as session:
        job, _ = jobs.create(session, SYSTEM, "Scan", 2, {"path": "/tmp"}, station_ids=[second])
        job_id = job.id
    with db.transaction() as session, pytest.raises(ForbiddenError):
        alerts.ingest(session, first, "Armadito", [EICAR], job_id=job_id)
    with db.transaction() as session, pytest.raises(UnknownJobError):
        alerts.ingest(session, first, "Armadito", [EICAR], job_id=job_id + 1000)
    assert alert_rows(db) == []
    assert last_alert_at(db, first) is None


def test_ingest_counts_stored_and_duplicates(db: Database, request: pytest.FixtureRequest) -> None:
    (sid,) = make_stations(db, 1)
    other = AlertReport("Other", "/tmp/other", detection_time=DETECTED)
    with db.transaction() as session:
        result = alerts.ingest(session, sid, "Armadito", [EICAR, EICAR, other])
    assert (result.stored, result.duplicates) == (2, 1)
    with db.transaction() as session:
        result = alerts.ingest(session, sid, "Armadito", [EICAR])
    assert (result.stored, result.duplicates) == (0, 1)


def test_a_report_larger_than_one_insert_keeps_each_alert_once(db: Database) -> None:
    """Alerts go in by one INSERT … ON CONFLICT DO NOTHING RETURNING, rendered by pages of
    at most 1,000 rows (SQLAlchemy's insertmanyvalues): a duplicate in another page, and
    one already stored, are still told apart from the new ones."""
    (sid,) = make_stations(db, 1)
    ingest(db, sid, [EICAR])
    count = 2 * 1000 + 50
    reports = [AlertReport("Many", f"/tmp/f{i}", detection_time=DETECTED) for i in range(count)]
    # The last chunk repeats the first report and the one stored before.
    batch = [*reports, reports[0], EICAR]
    with db.transaction() as session:
        result = alerts.ingest(session, sid, "Armadito", batch)
    assert (result.stored, result.duplicates) == (count, 2)
    assert [r for r, _ in result.new] == reports
    assert len(alert_rows(db)) == count + 1


def test_no_reports_leaves_last_alert_time_alone(db: Database) -> None:
    (sid,) = make_stations(db, 1)
    with db.transaction() as session:
        result = alerts.ingest(session, sid, "Armadito", [])
    assert (result.stored, result.duplicates) == (0, 0)
    assert last_alert_at(db, sid) is None
