"""Dashboard pages of linked numbers, compose and inbox."""

urlpatterns = []
