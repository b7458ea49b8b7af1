def test_demo_copy_has_the_centre(client, auth):
    r = client.get("/api/organisations", headers=auth("admin"))
    assert r.status_code == 200
    names = {o["name"] for o in r.json["organisations"]}
    assert names == {"centre", "helix-bio", "novacell", "st-marys", "city-general"}
