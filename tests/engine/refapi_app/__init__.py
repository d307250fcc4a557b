"""Step code in the reference SDK's style (``ruvon.models`` imports renamed), for the §2a API tests."""
