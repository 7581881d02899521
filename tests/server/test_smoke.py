from tests.conftest import Server


def test_enroll_and_getjobs(server: Server) -> None:
    agent = server.enrolled_agent()
    assert agent.agent_id > 0
    response = agent.getjobs()
    assert response.status_code == 200
    assert response.json() == {"jobs": []}
