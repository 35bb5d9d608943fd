"""How the local LB's HAProxy server rows read in `status`."""

from mlops_vm.provision.local.lb_admin import ServerState, http_status


def state(check_status: str, check_code: str) -> ServerState:
    return ServerState(
        name="model-1",
        status="UP",
        admin_state=0,
        current_sessions=0,
        total_sessions=3,
        check_status=check_status,
        check_code=http_status(check_code),
    )


def test_a_finished_check_shows_its_http_status():
    assert state("L7OK", "200").reason == "UP (L7OK 200)"


def test_a_check_in_progress_shows_no_code_rather_than_zero():
    # HAProxy reports "* L7OK" and code 0 while the next check runs.
    assert state("L7OK", "0").reason == "UP (L7OK)"
    assert state("L4CON", "").reason == "UP (L4CON)"
