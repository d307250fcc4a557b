"""The reference SDK's documented workflows, run unchanged but for module paths, to their documented outcome.

Each YAML under ``workflows/`` is the reference's text byte for byte except
module paths (``my_app.`` → ``refapp.<case>.my_app.``) and, for HTTP steps,
the URL host (rewritten to 127.0.0.1; the test then points it at its live
server's port). ``SOURCES.md`` names where each one comes from. Step code is
the documentation's own where it shows any (imports renamed), else ours.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from ruvon_edge import WorkflowEngine, WorkflowRegistry
from ruvon_edge.implementations.execution.thread_pool import ThreadPoolExecutionProvider
from ruvon_edge.implementations.persistence.sqlite import SQLitePersistenceProvider

WORKFLOWS = Path(__file__).parent / "workflows"


def registry_for(*names: str, host: str | None = None) -> WorkflowRegistry:
    """A registry of corpus workflows; ``host`` replaces the rewritten ``127.0.0.1:8080``."""
    registry = WorkflowRegistry(allowed_modules=["refapp"])
    for name in names:
        text = (WORKFLOWS / f"{name}.yaml").read_text()
        if host is not None:
            text = text.replace("127.0.0.1:8080", host)
        registry.register_yaml(text, source=f"{name}.yaml")
    return registry


@asynccontextmanager
async def engine_for(tmp_path: Path, *names: str, host: str | None = None, execution=None):
    store = SQLitePersistenceProvider(str(tmp_path / "edge.db"))
    extra = {"execution": execution} if execution is not None else {}
    async with WorkflowEngine(
        persistence=store, registry=registry_for(*names, host=host), **extra
    ) as engine:
        yield engine


async def drive(wf, **user_input):
    """The docs' loop: ``while workflow.status == "ACTIVE": await workflow.next_step(...)``."""
    while wf.status == "ACTIVE":
        await wf.next_step(user_input=user_input or {})
    return wf


async def events(engine, wf) -> list[str]:
    return [a.event_type for a in await engine.get_audit_log(wf.id)]


def host_of(server) -> str:
    return f"127.0.0.1:{server.server_address[1]}"


# -- tutorials ------------------------------------------------------------------------------


async def test_getting_started_hello_workflow(tmp_path):
    """HelloWorkflow greets and says goodbye to the name in its dict state."""
    async with engine_for(tmp_path, "getting_started") as engine:
        wf = await engine.start_workflow("HelloWorkflow", {"name": "Alice"})
        await drive(wf)
        assert wf.status == "COMPLETED"
        assert wf.state["greeting"] == "Hello, Alice!"
        assert wf.state["farewell"] == "Goodbye, Alice! See you next time."


async def test_build_task_manager_pauses_for_approval_then_completes(tmp_path):
    """TaskApprovalWorkflow assigns by priority, pauses at Request_Approval, and completes with the approver."""
    async with engine_for(tmp_path, "task_manager") as engine:
        data = {"task_id": "TASK-001", "title": "Implement new feature",
                "description": "Add user authentication to the platform", "priority": "high",
                "category": "development", "requires_approval": True}  # fmt: skip
        wf = await drive(await engine.start_workflow("TaskApprovalWorkflow", data))
        assert (wf.status, wf.current_step) == ("WAITING_HUMAN", "Request_Approval")
        assert wf.state.assigned_to == "senior_engineer" and wf.state.workflow_status == "assigned"
        await wf.next_step(user_input={"approved_by": "manager_alice", "approval_notes": "ok"})
        await drive(wf)
        assert wf.status == "COMPLETED"
        assert wf.state.approved_by == "manager_alice" and wf.state.completed
        assert wf.state.notification_sent and wf.state.workflow_status == "completed"


async def test_edge_deployment_payment_is_approved_online_or_under_the_floor_limit(tmp_path):
    """EdgePayment approves a small card payment whether the (random) network check says online or offline."""
    async with engine_for(tmp_path, "edge_payment") as engine:
        data = {"transaction_id": "TXN-1", "device_id": "POS-TERMINAL-001",
                "merchant_id": "MERCHANT-123", "amount": 45.99, "card_last_four": "1234",
                "card_type": "Visa", "processed_at": "2026-01-01T10:00:00"}  # fmt: skip
        wf = await drive(await engine.start_workflow("EdgePayment", data))
        assert wf.status == "COMPLETED" and wf.state.approved
        assert wf.state.offline_approved == (not wf.state.network_available)
        assert wf.state.authorization_code.startswith(
            "OFFLINE-" if wf.state.offline_approved else "AUTH-"
        )


async def test_parallel_execution_tutorial_merges_the_three_checks(tmp_path):
    """OrderProcessing runs three checks on a thread pool; their results land at the top of the state."""
    async with engine_for(
        tmp_path, "parallel_orders", execution=ThreadPoolExecutionProvider(max_workers=5)
    ) as engine:
        data = {"order_id": "ORD-12345", "customer_id": "CUST-999",
                "items": [{"sku": "WIDGET-001", "quantity": 2, "price": 29.99},
                          {"sku": "GADGET-042", "quantity": 1, "price": 149.99}],
                "total_amount": 209.97}  # fmt: skip
        wf = await drive(await engine.start_workflow("OrderProcessing", data))
        assert wf.status == "COMPLETED"
        assert wf.state.inventory_valid and wf.state.payment_valid
        # the tutorial's fraud score is hash(customer_id) % 100, which Python salts per process
        assert wf.state.fraud_check_passed == (wf.state.fraud_score < 0.8)
        assert wf.state.ready_to_ship == wf.state.fraud_check_passed
        assert wf.state.shipping_cost == (9.0 if wf.state.ready_to_ship else None)


@pytest.mark.parametrize("case", ["saga_payment", "saga_payment_failure"])
async def test_saga_tutorial_completes_or_rolls_back_in_reverse_order(tmp_path, case):
    """PaymentProcessing in saga mode completes; with the tutorial's failing create_shipment the earlier steps are compensated newest first."""
    async with engine_for(tmp_path, case) as engine:
        data = {
            "order_id": "ORD-12345",
            "customer_id": "CUST-789",
            "amount": 299.99,
            "currency": "USD",
        }
        wf = await engine.start_workflow("PaymentProcessing", data)
        wf.enable_saga_mode()
        await drive(wf)
        if case == "saga_payment":
            assert wf.status == "COMPLETED" and wf.state.workflow_status == "completed"
            assert wf.state.shipment_created and wf.state.compensations_run == []
        else:
            assert wf.status == "FAILED_ROLLED_BACK" and "Carrier API unavailable" in wf.error
            assert wf.state.compensations_run == [
                "release_inventory",
                "refund_payment",
                "cancel_order",
            ]
            assert not wf.state.payment_charged and wf.state.workflow_status == "order_canceled"


# -- how-to guides --------------------------------------------------------------------------


async def test_create_workflow_runs_its_automate_next_chain_in_one_call(tmp_path):
    """One next_step runs Validate_Order, Process_Payment and Ship_Order (automate_next), as the guide says."""
    async with engine_for(tmp_path, "create_workflow") as engine:
        data = {"order_id": "ORD-001", "customer_id": "CUST-123", "amount": 99.99}
        wf = await engine.start_workflow("OrderProcessing", data)
        await wf.next_step()
        assert wf.status == "COMPLETED"
        assert (wf.state.payment_id, wf.state.shipping_id, wf.state.status) == (
            "PAY-ORD-001",
            "SHIP-ORD-001",
            "shipped",
        )


@pytest.mark.parametrize(("amount", "path"), [(20000, "Manual_Approval"), (500, "Auto_Process")])
async def test_decision_steps_route_on_the_amount(tmp_path, amount, path):
    """Check_Order_Amount's routes send big orders to Manual_Approval (a human step) and small ones to Auto_Process."""
    async with engine_for(tmp_path, "decision_steps") as engine:
        wf = await drive(
            await engine.start_workflow("OrderProcessing", {"order_id": "O1", "amount": amount})
        )
        if path == "Manual_Approval":
            assert (wf.status, wf.current_step) == ("WAITING_HUMAN", "Manual_Approval")
            wf = await engine.resume(wf.id, {"reviewer": "boss"})
            assert wf.state.approved_by == "boss"
        assert wf.status == "COMPLETED" and wf.state.processed and wf.state.amount_checked


async def test_human_in_loop_validates_input_and_continues(tmp_path):
    """Await_Manager_Approval pauses on arrival, refuses input that fails ApprovalInput, then runs on."""
    async with engine_for(tmp_path, "human_in_loop") as engine:
        wf = await drive(
            await engine.start_workflow("OrderProcessing", {"order_id": "ORD-001", "amount": 1500})
        )
        assert (wf.status, wf.current_step) == ("WAITING_HUMAN", "Await_Manager_Approval")
        with pytest.raises(ValueError):
            await wf.next_step(user_input={"approved": "perhaps"})
        await wf.next_step(user_input={"approved": True, "reviewer": "manager@company.com",
                                       "approval_notes": "Verified customer credentials"})  # fmt: skip
        await drive(wf)
        assert wf.status == "COMPLETED" and wf.state.approved_by == "manager@company.com"
        assert wf.state.processed


async def test_saga_mode_guide_compensates_when_shipping_fails(tmp_path):
    """With shipping failing, inventory is released and the charge refunded; the workflow is FAILED_ROLLED_BACK."""
    from refapp.saga_mode.my_app import services

    async with engine_for(tmp_path, "saga_mode") as engine:
        services.shipping_service.fail_with = "Shipping unavailable"
        try:
            data = {
                "order_id": "ORD-001",
                "customer_id": "CUST-123",
                "items": ["a"],
                "amount": 99.99,
            }
            wf = await engine.start_workflow("OrderProcessing", data)
            wf.enable_saga_mode()
            await drive(wf)
        finally:
            services.shipping_service.fail_with = None
        assert wf.status == "FAILED_ROLLED_BACK"
        assert wf.state.inventory_reserved is False and wf.state.transaction_id is not None
        refunds = [c for c in services.payment_service.calls if c[0] == "refund"]
        assert refunds == [("refund", wf.state.transaction_id)]


async def test_saga_mode_guide_success_runs_every_step(tmp_path):
    """Without a failure the saga workflow completes and nothing is compensated."""
    async with engine_for(tmp_path, "saga_mode") as engine:
        data = {"order_id": "ORD-002", "customer_id": "C", "items": [], "amount": 5}
        wf = await engine.start_workflow("OrderProcessing", data)
        wf.enable_saga_mode()
        await drive(wf)
        assert wf.status == "COMPLETED" and wf.state.inventory_reserved
        assert "COMPENSATION_COMPLETED" not in await events(engine, wf)


async def test_http_polyglot_posts_the_state_and_stores_the_reply_body(tmp_path, http_server):
    """Call_External_Service POSTs the rendered body with its headers; output_key holds the parsed reply."""
    http_server.routes["/api/process"] = (200, {"status": "success", "result": "processed"})
    async with engine_for(tmp_path, "http_polyglot", host=host_of(http_server)) as engine:
        wf = await engine.start_workflow("PolyglotPipeline", {"user_id": "123", "input_data": "x"})
        wf = await engine.run(wf.id)
        assert wf.status == "COMPLETED"
        assert wf.state.service_response == {"status": "success", "result": "processed"}
        [request] = http_server.requests
        assert request["headers"]["Authorization"] == "Bearer secret-token"
        assert request["body"] == b'{"user_id":"123","data":"x"}'


async def test_http_ml_pipeline_chains_three_services(tmp_path, http_server):
    """A Python step then three HTTP services; each reply body feeds the next request's templates."""
    http_server.routes["/process"] = (200, {"features": [1, 2]})
    http_server.routes["/predict"] = (200, lambda body: {"result": f"label-for-{body['features']}"})
    http_server.routes["/send"] = (
        202,
        lambda body: {"queued": body["channels"], "result": body["result"]},
    )
    async with engine_for(tmp_path, "http_ml_pipeline", host=host_of(http_server)) as engine:
        wf = await engine.start_workflow(
            "MLPipeline", {"user_id": "u1", "raw_data": [1.0, -2.0, 3.0]}
        )
        await drive(wf)
        assert wf.status == "COMPLETED"
        assert [r["path"] for r in http_server.requests] == ["/process", "/predict", "/send"]
        assert wf.state.predictions == {"result": "label-for-[1, 2]"}
        assert wf.state.notification_status == {
            "queued": ["email", "sms"],
            "result": "label-for-[1, 2]",
        }


# -- advanced / reference -------------------------------------------------------------------


@pytest.mark.parametrize(("name", "workflow_type", "steps"), [
    ("injection_standard", "OrderProcessing_Standard", ["Validate_Order", "Process_Payment"]),
    ("injection_high_value", "OrderProcessing_HighValue", ["Validate_Order", "High_Value_Review", "Process_Payment"]),
])  # fmt: skip
async def test_dynamic_injection_alternatives_run_every_declared_step(
    tmp_path, name, workflow_type, steps
):
    """The page's two explicit workflow versions (no state model) run their steps in order."""
    async with engine_for(tmp_path, name) as engine:
        wf = await engine.run((await engine.start_workflow(workflow_type, {"amount": 20000})).id)
        assert wf.status == "COMPLETED" and wf.state.paid is True
        completed = [
            a.step_name
            for a in await engine.get_audit_log(wf.id)
            if a.event_type == "STEP_COMPLETED"
        ]
        assert completed == steps


async def test_yaml_schema_example_workflow(tmp_path):
    """The schema reference's example (initial_state_model_path, version 1.5.0) runs."""
    async with engine_for(tmp_path, "yaml_schema_order") as engine:
        wf = await engine.run(
            (await engine.start_workflow("OrderProcessing", {"order_id": "A", "amount": 3})).id
        )
        assert wf.status == "COMPLETED" and wf.state.valid and wf.workflow_version == "1.5.0"


# -- rufus-sdk examples ---------------------------------------------------------------------


@pytest.mark.parametrize(("name", "workflow_type", "check"), [
    ("cross_platform_wf2_iot_sensor_pipeline", "IoTSensorPipeline", lambda s: len(s["readings"]) == 10 and s["health_status"]),
    ("cross_platform_wf3_transaction_risk_scoring", "TransactionRiskScoring", lambda s: s["txn_id"].startswith("TXN-")),
    ("cross_platform_wf4_document_summarisation", "DocumentSummarisation", lambda s: s["summary"] and s["keywords"]),
    ("cross_platform_wf5_field_tech_triage", "FieldTechTriage", lambda s: "[REDACTED]" in s["redacted_text"]),
    ("cross_platform_wf6_paged_reasoning", "PagedReasoning", lambda s: s["generated_text"]),
])  # fmt: skip
async def test_cross_platform_examples_start_themselves_and_complete(
    tmp_path, name, workflow_type, check
):
    """The examples set automate_start: the first step runs inside start, the rest to COMPLETED."""
    async with engine_for(tmp_path, name) as engine:
        wf = await engine.start_workflow(workflow_type, {})
        assert wf.current_step != engine.registry.get(workflow_type).steps[0].name  # automate_start
        wf = await engine.run(wf.id)
        assert wf.status == "COMPLETED", wf.error
        assert check(wf.to_dict()["state"])


def applicant(age: int, country: str, amount: float = 10000) -> dict:
    profile = {"user_id": "U1", "name": "Ana", "email": "ana@example.test", "country": country,
               "age": age, "id_document_url": "https://docs.example/valid_id.png"}  # fmt: skip
    return {"requested_amount": amount, "applicant_profile": profile}


@pytest.mark.parametrize(("age", "country", "outcome"), [
    (30, "GB", ("FAST_TRACK_APPROVED", "APPROVED")),
    (30, "ZA", ("REJECTED_AUTOMATIC", "REJECTED")),
])  # fmt: skip
async def test_loan_application_pre_approval_jumps_to_the_final_decision(
    tmp_path, age, country, outcome
):
    """The loan example's parallel credit and fraud checks decide a fast-track approval or an automatic rejection."""
    async with engine_for(tmp_path, "loan_application", "loan_kyc") as engine:
        wf = await engine.run(
            (await engine.start_workflow("LoanApplication", applicant(age, country))).id
        )
        assert wf.status == "COMPLETED", wf.error
        assert (wf.state.pre_approval_status, wf.state.final_loan_status) == outcome
        assert wf.state.credit_check.score == 780


async def test_loan_detailed_review_stops_at_the_kyc_child_whose_tasks_return_an_undeclared_key(
    tmp_path,
):
    """A deliberate difference: KYC's tasks return kyc_message, which KYCState does not declare; the reference drops it silently, we fail that step by name."""
    async with engine_for(tmp_path, "loan_application", "loan_kyc") as engine:
        wf = await engine.run(
            (await engine.start_workflow("LoanApplication", applicant(22, "GB"))).id
        )
        assert wf.status == "FAILED_CHILD_WORKFLOW"
        assert "'kyc_message', which KYCState does not declare" in wf.error
        assert wf.state.pre_approval_status == "PENDING_DETAILED_REVIEW"


# -- reference step examples in a workflow of ours (steps byte for byte) ---------------------


async def test_loop_polls_an_http_status_until_ready(tmp_path, http_server):
    """Poll_Until_Ready repeats its HTTP body until the reply body is READY; each poll is a real request."""
    replies = iter(["PENDING", "PENDING", "READY"])
    http_server.routes["/status"] = (200, lambda _: next(replies))
    async with engine_for(tmp_path, "loop_poll_until_ready", host=host_of(http_server)) as engine:
        wf = await engine.run((await engine.start_workflow("PollUntilReady", {})).id)
        assert wf.status == "COMPLETED" and wf.state.api_status == "READY"
        assert len(http_server.requests) == 3
        assert "LOOP_LIMIT_REACHED" not in await events(engine, wf)


async def test_loop_poll_stops_at_max_iterations_and_says_so(tmp_path, http_server):
    """A service that never gets READY: ten polls, then the loop stops (the documented default), audited."""
    http_server.routes["/status"] = (200, "PENDING")
    async with engine_for(tmp_path, "loop_poll_until_ready", host=host_of(http_server)) as engine:
        wf = await engine.run((await engine.start_workflow("PollUntilReady", {})).id)
        assert wf.status == "COMPLETED" and len(http_server.requests) == 10
        assert "LOOP_LIMIT_REACHED" in await events(engine, wf)


async def test_fire_and_forget_spawns_an_independent_email_delivery(tmp_path):
    """Send_Email starts EmailDelivery from the template and records it in spawned_workflows."""
    async with engine_for(tmp_path, "fire_and_forget_email", "email_delivery") as engine:
        data = {"order_id": "ORD-9", "customer_email": "c@example.test"}
        wf = await engine.run((await engine.start_workflow("OrderConfirmation", data)).id)
        await engine.join_background()
        assert wf.status == "COMPLETED"
        [record] = wf.state.spawned_workflows
        assert record["workflow_type"] == "EmailDelivery"
        child = await engine.get_workflow(record["workflow_id"])
        assert child.status == "COMPLETED" and child.parent_id is None
        assert (child.state.recipient, child.state.subject, child.state.delivered) == (
            "c@example.test", "Order Confirmation", True)  # fmt: skip


async def test_cron_schedule_registers_a_schedule_that_serve_runs(tmp_path):
    """Schedule_Weekly_Report registers weekly_report_<user>; the scheduler starts GenerateReport on Monday 09:00."""
    from datetime import UTC, datetime

    from ruvon_edge.schedule import Scheduler

    async with engine_for(tmp_path, "cron_weekly_report", "generate_report") as engine:
        wf = await engine.run(
            (await engine.start_workflow("ReportSubscription", {"user_id": "u7"})).id
        )
        assert wf.status == "COMPLETED"
        now = [datetime(2026, 11, 29, 12, 0, tzinfo=UTC)]  # a Sunday: first sight of the schedule
        scheduler = Scheduler(engine, clock=lambda: now[0])
        assert await scheduler.tick() == []
        now[0] = datetime(2026, 11, 30, 9, 0, 30, tzinfo=UTC)  # Monday 09:00
        [started] = await scheduler.tick()
        assert await scheduler.tick() == []  # once per slot
        report = await engine.run(started)
        assert report.status == "COMPLETED" and report.state["report"] == "weekly_summary for u7"
        assert report.idempotency_key == "schedule:cron:weekly_report_u7:2026-11-30T09:00Z"


async def test_parallel_service_checks_deep_merge(tmp_path):
    """Check_Services' three tasks each add to `checks`; DEEP keeps all three parts."""
    async with engine_for(tmp_path, "check_services") as engine:
        wf = await engine.run(
            (await engine.start_workflow("CheckServices", {"sku": "A-1", "address": "1 Road"})).id
        )
        assert wf.status == "COMPLETED"
        assert wf.state.checks == {"inventory": True, "address": True, "shipping_cost": 4.5}


async def test_push_to_fleet_fans_out_in_batches(tmp_path):
    """Push_To_Fleet calls push_to_device once per device id (batches of 50) with device_id as keyword."""
    from refapp.push_to_fleet import steps

    steps.PUSHED.clear()
    devices = [f"dev-{i:03}" for i in range(120)]
    async with engine_for(tmp_path, "push_to_fleet") as engine:
        data = {"device_ids": devices, "config_data": {"volume": 3}}
        wf = await engine.run((await engine.start_workflow("FleetConfigPush", data)).id)
        assert wf.status == "COMPLETED" and wf.state["pushed"] == "dev-119"
        assert [d for d, _ in steps.PUSHED] == devices
        assert all(c == {"volume": 3} for _, c in steps.PUSHED)


@pytest.mark.parametrize(("amount", "waits"), [(5000, True), (10, False)])
async def test_evaluate_risk_injects_a_manual_review_for_high_risk(tmp_path, amount, waits):
    """A high risk_level inserts Manual_Review (a human step) after Evaluate_Risk; a low one does not."""
    async with engine_for(tmp_path, "evaluate_risk_injection") as engine:
        wf = await engine.run(
            (await engine.start_workflow("RiskEvaluation", {"amount": amount})).id
        )
        if waits:
            assert (wf.status, wf.current_step) == ("WAITING_HUMAN", "Manual_Review")
            wf = await engine.resume(wf.id, {"reviewer": "ops"})
            assert wf.state.reviewed_by == "ops"
        assert wf.status == "COMPLETED"


async def test_legacy_pause_pattern_hands_input_to_the_next_step(tmp_path):
    """A STANDARD step raises WorkflowPauseDirective; the next step gets the input as validated_input (the guide's legacy pattern)."""
    async with engine_for(tmp_path, "hitl_pause_then_process") as engine:
        wf = await drive(await engine.start_workflow("PauseThenProcess", {"order_id": "O-1"}))
        assert (wf.status, wf.current_step, wf.state.status) == (
            "WAITING_HUMAN",
            "Pause_For_Approval",
            "awaiting_approval",
        )
        with pytest.raises(ValueError):  # validated against the NEXT step's input_model
            await wf.next_step(user_input={"approved": True})
        await wf.next_step(user_input={"approved": True, "reviewer": "ana"})
        assert wf.status == "COMPLETED"
        assert (wf.state.approved, wf.state.reviewer, wf.state.status) == (True, "ana", "processed")


@pytest.mark.parametrize("approved", [True, False])
async def test_approval_routing_jumps_to_the_rejection_step(tmp_path, approved):
    """process_approval_with_routing keeps its in-place changes and jumps to Send_Rejection_Email on a rejection."""
    async with engine_for(tmp_path, "hitl_approval_routing") as engine:
        wf = await drive(await engine.start_workflow("ApprovalRouting", {"order_id": "O-2"}))
        assert (wf.status, wf.current_step) == ("WAITING_HUMAN", "Await_Approval")
        answer = (
            {"approved": True, "reviewer": "lee"}
            if approved
            else {"approved": False, "rejection_reason": "Invalid customer"}
        )
        await wf.next_step(user_input=answer)
        await drive(wf)
        assert wf.status == "COMPLETED" and wf.state.approved is approved
        if approved:
            assert (
                wf.state.approved_by == "lee" and wf.state.processed and not wf.state.rejection_sent
            )
        else:
            assert wf.state.rejection_reason == "Invalid customer" and wf.state.rejection_sent
            assert not wf.state.processed


async def test_sqlite_task_manager_example_pauses_for_approval_then_completes(tmp_path):
    """The sqlite_task_manager example waits at Request_Approval and finishes with the approver's name."""
    async with engine_for(tmp_path, "sqlite_task_manager") as engine:
        data = {
            "task_id": "TASK-7",
            "title": "Rotate keys",
            "description": "quarterly",
            "priority": "low",
        }
        wf = await drive(await engine.start_workflow("TaskApprovalWorkflow", data))
        assert (wf.status, wf.current_step) == ("WAITING_HUMAN", "Request_Approval")
        await wf.next_step(user_input={"approved_by": "lead", "approval_notes": "fine"})
        await drive(wf)
        assert wf.status == "COMPLETED" and wf.state.approved_by == "lead" and wf.state.completed


@pytest.mark.parametrize(("device", "merchant", "amount", "action"), [
    ("pos", "merch-003-pharmacy", 42.0, "ALLOW"),
    ("pos", "merch-999-unknown", 42.0, "BLOCK"),
    ("atm", "atm-loc-002-station", 60.0, None),  # its after-hours rule reads the wall clock
])  # fmt: skip
async def test_transaction_monitoring_example_jumps_by_device_type(
    tmp_path, device, merchant, amount, action
):
    """The edge example routes POS and ATM transactions to their own rules (jumps) and reaches a verdict."""
    async with engine_for(tmp_path, "edge_txn_monitoring") as engine:
        data = {"device_id": "d-1", "device_type": device, "transaction_id": "T1",
                "amount": amount, "merchant_id": merchant}  # fmt: skip
        wf = await engine.run((await engine.start_workflow("TransactionMonitoring", data)).id)
        assert wf.status == "COMPLETED", wf.error
        assert (
            wf.state.action == action if action else wf.state.action in ("ALLOW", "REVIEW", "BLOCK")
        )
        ran = [
            a.step_name
            for a in await engine.get_audit_log(wf.id)
            if a.event_type == "STEP_COMPLETED"
        ]
        assert ("ATM_Rules" in ran) == (device == "atm") and ("POS_Rules" in ran) == (
            device == "pos"
        )


@pytest.mark.parametrize("path", sorted(WORKFLOWS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_corpus_definition_survives_its_snapshot(path):
    """What an instance stores (by alias, defaults left out) loads back to the same definition."""
    from ruvon_edge.definition.loader import load_dict, load_file

    definition = load_file(path)
    assert (
        load_dict(definition.model_dump(mode="json", by_alias=True, exclude_defaults=True))
        == definition
    )
