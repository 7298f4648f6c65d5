"""The recall test set: a help centre of 22 documents, questions a customer would ask about them in their own words
(each with the document that answers it), and questions the help centre does not answer."""

DOCUMENTS = {
    "Opening hours": """# Opening hours

Our customer service team is available Monday to Friday from 8:00 to 18:00, and on Saturdays from 9:00 to 13:00.
We are closed on Sundays and on public holidays.

## Stores

Our stores open at 10:00 and close at 19:00 during the week. On Saturdays they stay open until 20:00.
During the December holiday season the stores keep extended hours, which are announced on each store's page.
""",
    "Resetting your password": """# Resetting your password

If you forgot your password, click "Forgot password?" on the sign-in page and enter the email address of your
account. We send you a link that is valid for 30 minutes. Follow it and choose a new password of at least 12
characters.

## The email does not arrive

Check your spam folder, and make sure you typed the address you registered with. You can ask for a new link after
five minutes. If you still receive nothing, contact our support team and we will verify your identity.
""",
    "Refund policy": """# Refund policy

We refund your purchase in full if you cancel it within 30 days. Once we have received and checked the returned
item, the money is credited to your original payment method within 5 to 10 business days.

## Partial refunds

Items that show signs of use, or that are missing parts, may receive a partial refund. Gift cards and
downloadable software cannot be refunded.
""",
    "Shipping and delivery": """# Shipping and delivery

Standard shipping takes 3 to 5 business days and is free for orders over 50 euros. Express shipping delivers the
next business day when you order before 14:00; it costs 9.90 euros.

## Tracking

As soon as your package leaves our warehouse you receive an email with a tracking number. You can follow your
package on the carrier's website with that number.
""",
    "Returning an item": """# Returning an item

You can send back any item within 30 days of delivery. Print the prepaid return label from your account page, pack
the item in its original packaging and drop it at any post office.

## Exchanges

If you want a different size or colour, choose "exchange" instead of "return" when you print the label: we ship the
new item as soon as the old one reaches our warehouse.
""",
    "Warranty": """# Warranty

All our products come with a two-year warranty covering manufacturing defects. The warranty does not cover damage
caused by accidents, misuse or normal wear.

## Making a warranty claim

To make a claim, send us a photo of the defect and your order number through the contact form. We repair or
replace the product free of charge; if neither is possible, we refund it.
""",
    "Deleting your account": """# Deleting your account

You can delete your account at any time under Settings → Privacy → Delete account. Deletion is permanent: your
order history, saved addresses and wishlists are erased after 30 days, and cannot be restored afterwards.

Invoices are kept for ten years, as the law requires, even after your account is deleted.
""",
    "Invoices": """# Invoices

An invoice is created for every order as soon as it ships. You find all your invoices as PDF files under
Account → Orders → Invoice.

## Company details

To add your company name and VAT number to an invoice, enter them at checkout. Invoices cannot be changed once they
have been issued, but we can issue a corrected copy on request.
""",
    "Two-factor authentication": """# Two-factor authentication

Two-factor authentication (2FA) protects your account with a second step at sign-in. Turn it on under Settings →
Security and scan the QR code with an authenticator app such as Google Authenticator or 1Password.

## Backup codes

Keep the ten backup codes we show you in a safe place. If you lose your phone, sign in with a backup code and set
up two-factor authentication again on your new device.
""",
    "Payment methods": """# Payment methods

We accept Visa, Mastercard, American Express, PayPal, Apple Pay and bank transfer. Payment by invoice is available
to business customers after a credit check.

Your card is charged when your order ships, not when you place it. We never store your full card number.
""",
    "Cancelling an order": """# Cancelling an order

You can cancel an order free of charge as long as it has not shipped. Open the order in your account and click
"Cancel order". Once the order has left our warehouse it can no longer be cancelled, but you can return it after
delivery.
""",
    "Changing your delivery address": """# Changing your delivery address

Until your order ships you can change its delivery address in the order's details. After it has shipped, contact
the carrier with your tracking number to redirect the parcel to another address or to a pickup point.
""",
    "Damaged or missing items": """# Damaged or missing items

If your parcel arrives damaged, take photos of the box and the items before you unpack everything, and report it
within 48 hours through the contact form. If an item is missing from your order, tell us within 14 days and we send
it at no cost.
""",
    "Gift cards": """# Gift cards

Gift cards are available from 10 to 500 euros and are valid for three years. They can be used in our online shop and
in every store, and combined with other payment methods. A gift card cannot be exchanged for cash.
""",
    "Loyalty programme": """# Loyalty programme

Members of our loyalty programme earn one point for every euro they spend. 100 points become a 5 euro voucher.
Points expire after 24 months without a purchase. Joining is free: sign up in your account under Rewards.
""",
    "Student discount": """# Student discount

Students get 15% off every order. Verify your student status once with your university email address; the discount
is then applied automatically at checkout for twelve months. It cannot be combined with other promotions.
""",
    "International shipping": """# International shipping

We ship to 40 countries in Europe, North America and Asia. Orders outside the European Union may be subject to
import duties and taxes, which the recipient pays on delivery. Delivery abroad takes 5 to 12 business days.
""",
    "Contacting customer support": """# Contacting customer support

You can reach our support team by phone on +33 1 23 45 67 89, by email at help@example.com, or through the live
chat in the app. We answer emails within one business day.
""",
    "Privacy and your data": """# Privacy and your data

We process your personal data only to fulfil your orders and, if you agree, to send you our newsletter. You can
download a copy of all the data we hold about you under Settings → Privacy → Export data. We never sell data to
third parties.
""",
    "Newsletter": """# Newsletter

Subscribe to our newsletter to hear about new collections and sales first. To unsubscribe, click the link at the
bottom of any newsletter email, or switch off marketing emails under Settings → Notifications.
""",
    "Product care": """# Product care

Wash cotton garments at 30 degrees, inside out, and do not tumble dry them. Leather goods should be cleaned with a
dry cloth and treated with leather balm twice a year. Keep wooden furniture away from direct sunlight and heaters.
""",
    "Size guide": """# Size guide

Measure your chest, waist and hips with a tape measure and compare them with the size chart on each product page.
If you are between two sizes, choose the larger one for a relaxed fit. Shoes run true to size.
""",
}

# (question, the document that answers it): paraphrased, not copied.
QUESTIONS = [
    ("When are you open on Saturday?", "Opening hours"),
    ("What time does the shop close on weekdays?", "Opening hours"),
    ("Are you open on Sundays?", "Opening hours"),
    ("I forgot my password, how do I get back into my account?", "Resetting your password"),
    ("The password reset email never came", "Resetting your password"),
    ("How long does it take to get my money back?", "Refund policy"),
    ("Can I get a reimbursement for a gift card?", "Refund policy"),
    ("How many days does delivery take?", "Shipping and delivery"),
    ("Where can I track my package?", "Shipping and delivery"),
    ("Is there free shipping?", "Shipping and delivery"),
    ("How do I send back something I bought?", "Returning an item"),
    ("Can I exchange a shirt for a different size?", "Returning an item"),
    ("My product broke after a year, is it covered?", "Warranty"),
    ("How do I file a warranty claim?", "Warranty"),
    ("How can I close my account permanently?", "Deleting your account"),
    ("Where do I download the invoice for my order?", "Invoices"),
    ("Can you put my VAT number on the invoice?", "Invoices"),
    ("How do I turn on 2FA?", "Two-factor authentication"),
    ("I lost my phone and cannot sign in with my authenticator app", "Two-factor authentication"),
    ("Do you take PayPal?", "Payment methods"),
    ("When is my credit card charged?", "Payment methods"),
    ("Can I cancel my order before it ships?", "Cancelling an order"),
    ("I entered the wrong address for my delivery", "Changing your delivery address"),
    ("My parcel arrived broken, what should I do?", "Damaged or missing items"),
    ("Something is missing from my order", "Damaged or missing items"),
    ("How long is a gift card valid?", "Gift cards"),
    ("How do I collect reward points?", "Loyalty programme"),
    ("Is there a discount for students?", "Student discount"),
    ("Do you deliver to Canada, and do I pay customs duties?", "International shipping"),
    ("What is your phone number?", "Contacting customer support"),
    ("How can I get a copy of the personal data you have about me?", "Privacy and your data"),
    ("How do I stop receiving your marketing emails?", "Newsletter"),
    ("How should I wash a cotton t-shirt?", "Product care"),
    ("Which size should I pick if I am between two?", "Size guide"),
]

# Questions this help centre does not answer: the no-model threshold must refuse them.
OFF_TOPIC = [
    "What is the capital of Australia?",
    "Can you recommend a good pizza restaurant nearby?",
    "Who won the football world cup in 2018?",
    "Write me a poem about the sea",
    "What's the weather like tomorrow in Berlin?",
    "How do I install Python on Windows?",
    "Explain quantum entanglement simply",
    "What is the best programming language for games?",
    "How many calories are in a banana?",
    "Tell me a joke about cats",
]
