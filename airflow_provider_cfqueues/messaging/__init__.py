"""Integration with the common-messaging provider (``MessageQueueTrigger``); optional."""
