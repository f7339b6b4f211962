# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What encrypting an instance by snapshot, encrypted copy, restore and rename needs from the lab.

- ``renames_move_the_endpoint``: ModifyDBInstance with NewDBInstanceIdentifier refuses a name in use, shows
  ``renaming`` while the real PostgreSQL restarts (RDS reboots a renamed instance) and moves the endpoint with the
  name. On AWS the endpoint is ``<identifier>.<hash>.<region>.rds.amazonaws.com``; in the lab every Address is
  127.0.0.1, so the port plays the DNS name's part: an identifier that a rename gives up keeps its port, and the next
  instance renamed to that identifier serves on it. A client that keeps connecting to the old host and port reaches
  the instance now called by the old name, as a client of the old DNS name does on AWS.
- ``stop_start_events``: StopDBInstance / StartDBInstance (whose real PostgreSQL stop and start live in
  ``lifecycle.status_takes_time``) record the RDS events of a stopped and a started instance.

Restores from an encrypted snapshot already carry StorageEncrypted and the snapshot's KmsKeyId (``storage``).
"""

from __future__ import annotations

from moto.rds.exceptions import DBInstanceAlreadyExists
from moto.rds.models import RDSBackend

from tests.lab.fidelity._support import begin_phase, instance_event, lab, pg_of_instance, replace


def _pg_module():
    from tests.lab import postgres
    return postgres


# --------------------------------------------------------------------------------------------------------------
# renames_move_the_endpoint

def renames_move_the_endpoint() -> None:
    """NewDBInstanceIdentifier: an identifier in use is refused; ``renaming`` while PostgreSQL restarts on the port of
    the new name (the endpoint follows the name; the old name is free at once); events before and after."""
    replace(RDSBackend, "modify_db_instance", _wrap_rename(RDSBackend.modify_db_instance))


def _name_ports(backend: RDSBackend) -> dict:
    """identifier -> the port its endpoint had when a rename gave the identifier up (per backend: reset with it)."""
    return backend.__dict__.setdefault("_lab_name_ports", {})


def _wrap_rename(original):
    def modify_db_instance(self: RDSBackend, db_instance_identifier: str, db_kwargs: dict):
        new_id = db_kwargs.get("new_db_instance_identifier")
        if not new_id or new_id.lower() == db_instance_identifier.lower():
            db_kwargs.pop("new_db_instance_identifier", None)
            return original(self, db_instance_identifier, db_kwargs)
        self._validate_db_identifier(new_id)
        if new_id in self.databases:
            raise DBInstanceAlreadyExists()
        before = self.describe_db_instances(db_instance_identifier)[0]
        old_id, old_port = before.db_instance_identifier, before.port
        database = original(self, db_instance_identifier, db_kwargs)
        instance_event(database, f"Renamed DB instance from {old_id} to {new_id}", ["configuration change"])
        if database.db_cluster_identifier:
            return database  # an Aurora member's endpoint is the cluster's business
        ports = _name_ports(self)
        ports[old_id] = old_port
        port = ports.pop(new_id, None)
        state = lab()
        generation = state.generation
        pg = pg_of_instance(database)

        def work():
            if pg is not None:
                pg.move_to_port(port or _pg_module()._free_port())
            with state.lock:
                if state.generation != generation:
                    return
                if pg is not None:
                    database.port = pg.port
                instance_event(database, "DB instance restarted", ["availability"])

        job = state.run_job(f"rename-{new_id}", work)
        begin_phase(database, "renaming", state.timing.seconds("reboot"), job=job)
        return database

    modify_db_instance.__name__ = "modify_db_instance"
    return modify_db_instance


# --------------------------------------------------------------------------------------------------------------
# stop_start_events

def stop_start_events() -> None:
    """StopDBInstance and StartDBInstance leave the events RDS records (category notification)."""
    replace(RDSBackend, "stop_db_instance", _with_event(RDSBackend.stop_db_instance, "DB instance stopped"))
    replace(RDSBackend, "start_db_instance", _with_event(RDSBackend.start_db_instance, "DB instance started"))


def _with_event(original, message: str):
    def method(self, db_instance_identifier, *args, **kwargs):
        database = original(self, db_instance_identifier, *args, **kwargs)
        instance_event(database, message, ["notification"])
        return database

    method.__name__ = original.__name__
    return method
