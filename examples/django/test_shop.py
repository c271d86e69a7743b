import pytest
from django.db import connection
from shop.models import Customer, Order

pytestmark = pytest.mark.django_db


def test_the_test_database_is_the_workers(isolate_db):
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_database()")
        (name,) = cursor.fetchone()
    assert name == isolate_db.name == connection.settings_dict["NAME"]


def test_orders_belong_to_a_customer():
    ada = Customer.objects.create(name="ada")
    Order.objects.create(customer=ada, total_cents=1200)
    Order.objects.create(customer=ada, total_cents=300)
    assert sorted(o.total_cents for o in ada.orders.all()) == [300, 1200]


def test_deleting_a_customer_deletes_its_orders():
    bob = Customer.objects.create(name="bob")
    Order.objects.create(customer=bob, total_cents=500)
    bob.delete()
    assert Order.objects.count() == 0


def test_each_test_starts_empty():
    # Every test runs in a transaction that is rolled back: nothing is left by the others.
    assert Customer.objects.count() == 0
    assert Order.objects.count() == 0
