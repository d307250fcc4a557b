"""The tutorial's model, shared with the happy-path case."""

from refapp.saga_payment.payment_processor.models import PaymentState  # noqa: F401
