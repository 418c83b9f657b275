"""The deliveries API of webhook-fanout: the delivery log (list, one delivery with its
attempts), redelivery, replay of a time range and the test event (``svc.webhook-fanout.
deliveries_list``, ``delivery_get``, ``delivery_redeliver``, ``webhook_replay``,
``webhook_test``)."""
