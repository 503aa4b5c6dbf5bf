#!/usr/bin/env python3
"""Minimal Tryton 8.0 setup for Magento<->ERP integration tests (from
../../shared/erp/tryton/setup.py, with the fixture SKUs and a SHIPPING service product).

Prerequisites (see NOTES.md):
    python3 -m venv $VENV
    $VENV/bin/pip install 'trytond>=8.0,<8.1' 'proteus>=8.0,<8.1' \
        'trytond_sale>=8.0,<8.1' 'trytond_stock>=8.0,<8.1' ...
    touch $TRYTON_DIR/db/erp.sqlite
    TRYTONPASSFILE=passfile trytond-admin -c trytond.conf -d erp --all --email admin@example.com
    TRYTONPASSFILE=passfile trytond-admin -c trytond.conf -d erp -u sale --activate-dependencies

Then:
    $VENV/bin/python setup.py

Uses proteus in "direct trytond" mode (no server needed), following the
scenario doctests shipped in trytond/modules/sale/tests/scenario_sale.rst.
Idempotent: re-running skips what already exists.
"""
import datetime
import json
import os
import sys
from decimal import Decimal

from proteus import Model, Wizard, config as pconfig

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIG_FILE = os.environ.get(
    'TRYTOND_CONFIG', os.path.join(HERE, 'trytond.conf'))
DATABASE = os.environ.get('TRYTON_DB', 'erp')

cfg = pconfig.set_trytond(
    database=DATABASE, user='admin', config_file=CONFIG_FILE)

# Helpers shipped with the Tryton modules (used by their scenario tests).
from trytond.modules.account.tests.tools import (  # noqa: E402
    create_chart, create_fiscalyear, create_tax, get_accounts)
from trytond.modules.account_invoice.tests.tools import (  # noqa: E402
    create_payment_term, set_fiscalyear_invoice_sequences)
from trytond.modules.company.tests.tools import create_company  # noqa: E402
from trytond.modules.currency.tests.tools import get_currency  # noqa: E402

Company = Model.get('company.company')
Currency = Model.get('currency.currency')
CurrencyRate = Model.get('currency.currency.rate')
Party = Model.get('party.party')
FiscalYear = Model.get('account.fiscalyear')
Account = Model.get('account.account')
ProductCategory = Model.get('product.category')
ProductTemplate = Model.get('product.template')
Product = Model.get('product.product')
ProductUom = Model.get('product.uom')
PaymentTerm = Model.get('account.invoice.payment_term')
Location = Model.get('stock.location')
Inventory = Model.get('stock.inventory')
User = Model.get('res.user')

# 1. Company (currency USD) -------------------------------------------------
if not Company.find():
    usd = get_currency('USD')
    create_company(currency=usd)
    print('company created')
company, = Company.find()
# reload context so that company is the user's current company
cfg._context = User.get_preferences(True, {})

# Second currency for multi-currency orders (rate relative to USD = 1)
if not Currency.find([('code', '=', 'EUR')]):
    eur = Currency(name='Euro', symbol='€', code='EUR',
        rounding=Decimal('0.01'))
    eur.save()
    CurrencyRate(date=datetime.date(2000, 1, 1), rate=Decimal('0.920000'),
        currency=eur).save()
    print('EUR created')

# 2. Chart of accounts + fiscal year (needed: sale -> invoice) -------------
if not Account.find([('company', '=', company.id)]):
    create_chart(company)
    print('chart of accounts created')
accounts = get_accounts(company)

today = datetime.date.today()
if not FiscalYear.find([('start_date', '<=', today),
            ('end_date', '>=', today)]):
    fiscalyear = set_fiscalyear_invoice_sequences(create_fiscalyear(company))
    fiscalyear.click('create_period')
    print('fiscal year created')

# 3. Tax, account category, payment term ------------------------------------
Tax = Model.get('account.tax')
tax = Tax.find([])
if not tax:
    tax = create_tax(Decimal('.10'))
    tax.save()
    print('tax created')
else:
    tax = tax[0]

cats = ProductCategory.find([('name', '=', 'Goods (10% tax)')])
if cats:
    category, = cats
else:
    category = ProductCategory(name='Goods (10% tax)')
    category.accounting = True
    category.account_expense = accounts['expense']
    category.account_revenue = accounts['revenue']
    category.customer_taxes.append(Tax(tax.id))
    category.save()
    print('account category created')

if not PaymentTerm.find([('name', '=', 'Direct')]):
    create_payment_term().save()
    print('payment term created')

# 4. Customer party --------------------------------------------------------
if not Party.find([('name', '=', 'Jane Doe')]):
    customer = Party(name='Jane Doe')
    customer.contact_mechanisms.new(type='email', value='jdoe@example.com')
    customer.addresses[0].street = '123 Oak Ave'
    customer.addresses[0].postal_code = '10577'
    customer.addresses[0].city = 'Purchase'
    customer.save()
    print('customer created')

# 5. Two products, SKU == product.product.code ------------------------------
unit, = ProductUom.find([('name', '=', 'Unit')])
PRODUCTS = [
    ('WS12-M-Orange', 'Radiant Tee M Orange', Decimal('22.00'), 'goods'),
    ('MH01-S-Gray', 'Chaz Kangeroo Hoodie S Gray', Decimal('52.00'), 'goods'),
    # The Magento fixture SKUs, so fixture-shaped orders map one to one.
    ('24-WB03', 'Driven Backpack', Decimal('36.00'), 'goods'),
    ('24-WB01', 'Voyage Yoga Bag', Decimal('32.00'), 'goods'),
    ('MS-TEE-L-Blue', 'Tee L Blue', Decimal('24.00'), 'goods'),
    ('MH07-M-Black', 'Hoodie M Black', Decimal('52.00'), 'goods'),
    # Shipping charged on an order, as a service line.
    ('SHIPPING', 'Shipping', Decimal('0.00'), 'service'),
]
for sku, name, price, kind in PRODUCTS:
    if Product.find([('code', '=', sku)]):
        continue
    template = ProductTemplate()
    template.name = name
    template.default_uom = unit
    template.type = kind
    template.salable = True
    template.list_price = price
    template.account_category = category
    product, = template.products
    # product.product.code is computed = template.code (prefix) + suffix_code
    product.suffix_code = sku
    product.cost_price = (price / 2).quantize(Decimal('0.0001'))
    template.save()
    print('product created', sku)

# 6. Warehouses: default WH (code WH, storage STO) + a second one WH2 --------
warehouse, = Location.find([('code', '=', 'WH')])
if not Location.find([('code', '=', 'WH2')]):
    inp = Location(name='WH2 Input', code='IN2', type='storage')
    inp.save()
    out = Location(name='WH2 Output', code='OUT2', type='storage')
    out.save()
    sto = Location(name='WH2 Storage', code='STO2', type='storage')
    sto.save()
    wh2 = Location(name='Second Warehouse', code='WH2', type='warehouse',
        input_location=inp, output_location=out, storage_location=sto)
    wh2.save()
    print('warehouse WH2 created')
# inventories need a lost-and-found location on a parent warehouse
wh2, = Location.find([('code', '=', 'WH2')])
if not wh2.lost_found_location:
    lost_found, = Location.find([('type', '=', 'lost_found')], limit=1)
    wh2.lost_found_location = lost_found
    wh2.save()

# 7. Initial stock via inventories ------------------------------------------
def set_inventory(location_code, quantities):
    loc, = Location.find([('code', '=', location_code)])
    if Inventory.find([('location', '=', loc.id), ('state', '=', 'done')]):
        return
    inv = Inventory(location=loc)
    for sku, qty in quantities.items():
        product, = Product.find([('code', '=', sku)])
        line = inv.lines.new(product=product)
        line.quantity = qty
    inv.click('confirm')
    print('inventory done in', location_code, quantities)


set_inventory('STO', {'WS12-M-Orange': 100.0, 'MH01-S-Gray': 40.0})
set_inventory('STO2', {'WS12-M-Orange': 25.0})

# Summary (ids used by the JSON-RPC examples in NOTES.md) --------------------
summary = {
    'company': company.id,
    'currencies': {c.code: c.id for c in Currency.find([])},
    'customer': Party.find([('name', '=', 'Jane Doe')])[0].id,
    'products': {p.code: p.id for p in Product.find([('code', '!=', None)])},
    'unit': unit.id,
    'payment_term': PaymentTerm.find([('name', '=', 'Direct')])[0].id,
    'locations': {l.code: l.id for l in Location.find([('code', '!=', None)])},
}
print(json.dumps(summary, indent=2, sort_keys=True))
