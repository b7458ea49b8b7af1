def test_demo_copy_has_the_centre(client, auth):
    r = client.get("/api/organisations", headers=auth("admin"))
    assert r.status_code == 200
    assert {o["name"] for o in r.json["organisations"]} == {"centre", "helix-bio", "novacell"}
