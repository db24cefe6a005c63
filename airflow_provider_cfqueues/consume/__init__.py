"""
What becomes of a pulled message, decided and sent in one place (docs/architecture.md):

* :mod:`.attempts`: the consumer's delivery budget and the message retry delay;
* :mod:`.fate`: the one vocabulary of actions (ack, retry, hold, release, poison);
* :mod:`.drain_rules` and :mod:`.stream_rules`: the drain's and the message stream's decision tables
  over it (pure, table-tested);
* :mod:`.poison`: rejections and the poison envelope; :mod:`.give_back`: the one flow that routes a
  batch's poison copies and then sends one ack request, run by the drain's threads and by the
  stream's event loop alike;
* :mod:`.drain`, :mod:`.drain_plan`: the PullAndAck engine; :mod:`.poison_routes`, :mod:`.release`:
  where its poison goes, and leases given back after an error.

Nothing here imports an Airflow class: operators and triggers turn their arguments into calls here,
and the results into XCom values and events.
"""
