"""
What becomes of a pulled message, decided and sent in one place (docs/architecture.md):

* :mod:`.fate`: the one vocabulary of actions, the drain's and the message stream's decision tables
  side by side over it (pure, table-tested), and :func:`.fate.give_back`, the one flow that routes a
  batch's poison and then sends one ack request, run by the drain's threads and the stream's event
  loop alike;
* :mod:`.attempts`: the consumer's delivery budget and the message retry delay;
* :mod:`.poison`: rejections (``RejectMessage``), the poison envelope, and where poison goes;
* :mod:`.drain`, :mod:`.drain_plan`: the PullAndAck engine and what it is asked and did;
  :mod:`.release`: leases given back after an error.

Nothing here imports an Airflow class (the hook is passed in): operators and triggers turn their
arguments into calls here, and the results into XCom values and events.
"""
