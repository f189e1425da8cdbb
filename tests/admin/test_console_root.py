async def test_admin_without_slash_redirects(node):
    r = await node.client.get("/admin", allow_redirects=False)
    assert r.status == 301 and r.headers["Location"] == "/admin/"
